"""What a claim costs behind a transaction pooler (``?stem_pooler=transaction``), against the
direct path, without a worker around it.

``python -m bench.pooled_claims [--backlog 60000] [--rounds 10] [--per-round 100] [--limit 10]
[--pgbouncer-url postgresql://postgres@127.0.0.1:6432/bench_stem]``: a fresh namespace gets a
backlog of no-op jobs; claims of ``--limit`` jobs each are committed, and timed by the client
(round trips included), in interleaved rounds of these modes:

* ``direct``: a worker's claim connection as on a direct URL (``job_claim_planner`` once per
  session, then one autocommit statement per claim): the default path;
* ``direct, pooled claim``: the same connection running the claim as it does behind a pooler
  (a transaction: ``SET LOCAL enable_sort = off``, then the claim), which isolates what that
  costs;
* ``through pgbouncer``: the pooled claim on a connection to ``--pgbouncer-url`` (a
  transaction-mode PgBouncer in front of the same database), when given.

Prints p50 / p90 / mean in ms per claim.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import psycopg

from bench.common import DEFAULT_DSN, ensure_database
from stem_pg.db.connect import connect_async
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.jobs import JobStore
from stem_pg.schema.migrate import migrate

NAMESPACE = "bench_pooled_claims"


def fill(dsn: str, count: int) -> None:
    queries = queries_for(NAMESPACE)
    with psycopg.connect(dsn) as conn, conn.cursor().copy(queries["job_copy"]) as copy:
        for _ in range(count):
            copy.write_row((str(uuid.uuid4()), "bench.noop", "default", 0, "{}", "{}", 3, None, True))


async def claims(
    dsn: str, pgbouncer_url: str | None, rounds: int, per_round: int, limit: int
) -> dict[str, list[float]]:
    queries = queries_for(NAMESPACE)
    direct = JobStore(queries, result_ttl=60)
    pooled = JobStore(queries, result_ttl=60, pooled=True)
    conns = {"direct": await connect_async(dsn), "direct, pooled claim": await connect_async(dsn)}
    await direct.plan_claims(conns["direct"])
    stores = {"direct": direct, "direct, pooled claim": pooled}
    if pgbouncer_url:
        conns["through pgbouncer"] = await connect_async(pgbouncer_url)
        stores["through pgbouncer"] = pooled
    timings: dict[str, list[float]] = {mode: [] for mode in conns}
    try:
        for i in range(rounds):
            for mode in list(conns) if i % 2 == 0 else list(reversed(conns)):
                for _ in range(per_round):
                    began = time.perf_counter()
                    jobs = await stores[mode].claim(
                        conns[mode], queue="default", limit=limit, worker_id="bench",
                        token=str(uuid.uuid4()), lease_seconds=30, tasks=None,
                    )  # fmt: skip
                    timings[mode].append((time.perf_counter() - began) * 1000)
                    assert len(jobs) == limit, "the backlog ran out: raise --backlog"
    finally:
        for conn in conns.values():
            await conn.close()
    return timings


def report(timings: dict[str, list[float]]) -> None:
    for mode, xs in timings.items():
        xs.sort()
        print(
            f"{mode:>22}: n {len(xs)}, p50 {xs[len(xs) // 2]:.3f} ms,"
            f" p90 {xs[int(len(xs) * 0.9)]:.3f} ms, mean {statistics.mean(xs):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pooled_claims", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--pgbouncer-url", default=None)
    parser.add_argument("--backlog", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    ensure_database(args.dsn)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{NAMESPACE}" CASCADE')
    migrate(args.dsn, NAMESPACE)
    fill(args.dsn, args.backlog)
    report(asyncio.run(claims(args.dsn, args.pgbouncer_url, args.rounds, args.per_round, args.limit)))
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{NAMESPACE}" CASCADE')


if __name__ == "__main__":
    main()
