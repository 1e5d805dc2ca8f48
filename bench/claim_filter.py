"""What the claim's task-name filter (deploy-safe claiming) costs, without a worker around it.

``python -m bench.claim_filter [--backlog 100000] [--rounds 10] [--per-round 20] [--limit 400]
[--foreign 10000]``: a fresh namespace gets a backlog of no-op jobs; one claim connection (set
up as a worker's: ``job_claim_planner``) runs ``job_claim`` with the task names of a worker
that registers 20 tasks, and with none (``--claim-unregistered``), in interleaved rounds, each
claim timed by the server (EXPLAIN ANALYZE, rolled back). Then ``--foreign`` jobs of a task
the worker does not register go to the head of the queue: what each claim pays to walk past
them (a rolling deploy, before a newer worker took them). Prints p50 / p90 / mean in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid

import psycopg

from bench.common import DEFAULT_DSN, ensure_database
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.jobs import JobStore
from stem_pg.schema.migrate import migrate

NAMESPACE = "bench_claim_filter"
REGISTERED = ["bench.noop", *(f"bench.other{i}" for i in range(19))]


def fill(dsn: str, count: int, task: str, priority: int = 0) -> None:
    queries = queries_for(NAMESPACE)
    with psycopg.connect(dsn) as conn, conn.cursor().copy(queries["job_copy"]) as copy:
        for _ in range(count):
            copy.write_row((str(uuid.uuid4()), task, "default", priority, "{}", "{}", 3, None, True))


async def claims(
    dsn: str, modes: dict[str, list[str] | None], rounds: int, per_round: int, limit: int
) -> dict[str, list[float]]:
    """The server's execution time of each claim (EXPLAIN ANALYZE, rolled back: no commit
    flush, which on a shared machine dwarfs the rest, and the backlog stays as it was)."""
    store = JobStore(queries_for(NAMESPACE), result_ttl=60)
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store.plan_claims(conn)
        for i in range(rounds):
            for mode in list(modes) if i % 2 == 0 else list(reversed(modes)):
                for _ in range(per_round):
                    params = {
                        "queue": "default", "limit": limit, "worker_id": "bench",
                        "token": str(uuid.uuid4()), "lease_seconds": 30, "tasks": modes[mode],
                    }  # fmt: skip
                    async with conn.transaction(force_rollback=True):
                        cur = await conn.execute(
                            "EXPLAIN (ANALYZE, FORMAT JSON) " + store.q["job_claim"], params
                        )
                        row = await cur.fetchone()
                    assert row is not None
                    timings[mode].append(float(row[0][0]["Execution Time"]))
    return timings


def report(timings: dict[str, list[float]]) -> None:
    for mode, xs in timings.items():
        xs.sort()
        print(
            f"{mode:>34}: n {len(xs)}, p50 {xs[len(xs) // 2]:.3f} ms,"
            f" p90 {xs[int(len(xs) * 0.9)]:.3f} ms, mean {statistics.mean(xs):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claim_filter", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--foreign", type=int, default=10_000)
    args = parser.parse_args()
    ensure_database(args.dsn)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{NAMESPACE}" CASCADE')
    migrate(args.dsn, NAMESPACE)
    fill(args.dsn, args.backlog, "bench.noop")
    modes: dict[str, list[str] | None] = {
        "task names (default)": REGISTERED,
        "any task (--claim-unregistered)": None,
    }
    report(asyncio.run(claims(args.dsn, modes, args.rounds, args.per_round, args.limit)))
    fill(args.dsn, args.foreign, "bench.only_in_the_next_release", priority=9)
    foreign = {f"task names, {args.foreign} foreign jobs ahead": REGISTERED}
    report(asyncio.run(claims(args.dsn, foreign, 2, args.per_round, args.limit)))
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{NAMESPACE}" CASCADE')


if __name__ == "__main__":
    main()
