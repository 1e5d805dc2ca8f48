"""What a durable claim costs on this machine, without a job system around it.

``python -m bench.commit_cost [--rounds 10] [--per-round 100]``: one connection runs a
one-row UPDATE in its own transaction, with ``synchronous_commit`` off (the claim before
2026-12-01) and on (the claim since), set the way ``job_claim`` sets it, in interleaved
rounds; prints p50 / p90 / mean of the statement's round trip (commit included) in ms.
The difference is the WAL flush a durable claim waits for.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from bench.common import DEFAULT_DSN, ensure_database

UPDATE = (
    "WITH s AS MATERIALIZED (SELECT set_config('synchronous_commit', %s, true))"
    " UPDATE bench_commit_cost SET n = n + 1 FROM s WHERE id = 1"
)


def run(dsn: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    ensure_database(dsn)
    timings: dict[str, list[float]] = {"off": [], "on": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commit_cost (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO bench_commit_cost VALUES (1, 0) ON CONFLICT DO NOTHING")
        try:
            for i in range(rounds):
                for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                    for _ in range(per_round):
                        start = time.perf_counter()
                        conn.execute(UPDATE, (mode,))
                        timings[mode].append((time.perf_counter() - start) * 1000)
        finally:
            conn.execute("DROP TABLE bench_commit_cost")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.commit_cost", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    for mode, xs in run(args.dsn, args.rounds, args.per_round).items():
        xs.sort()
        print(
            f"synchronous_commit {mode:>3}: n {len(xs)}, p50 {xs[len(xs) // 2]:.3f} ms,"
            f" p90 {xs[int(len(xs) * 0.9)]:.3f} ms, mean {statistics.mean(xs):.3f} ms"
        )


if __name__ == "__main__":
    main()
