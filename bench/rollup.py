"""``python -m bench.rollup``: what the dashboard's per-minute chart costs with an hour of
results at a given finish rate, before (a full scan of the hour) and after (result_minutes,
migration 0019), and what the maintenance pass that rolls results up costs."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from bench.common import ensure_database, log, write_json
from bench.results_scale import migrate_fresh, q
from stem_pg.db.queries import Queries

DSN = "postgresql://postgres@127.0.0.1:5432/bench_results"
NS = "bench_rollup"

#: An hour of results at `rate` a second, up to now, over 4 queues, 1 in 20 failed.
FILL = """
INSERT INTO {ns}.results (id, task, queue, priority, state, attempts, enqueued_at, started_at,
                          finished_at)
SELECT 'r' || i, 't', (ARRAY['default', 'mail', 'images', 'bulk'])[1 + i %% 4], 0,
       CASE WHEN i %% 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1,
       f - interval '40 ms', f - interval '5 ms', f
FROM (SELECT i, now() - (%(n)s - i) * %(step)s * interval '1 s' AS f
      FROM generate_series(1, %(n)s) AS i) AS t
"""

OLD_DASH_MINUTES = """
SELECT queue, date_bin('1 minute', finished_at, timestamptz '2000-01-01 00:00+00') AS minute,
       count(*) AS finished, count(*) FILTER (WHERE state = 'failed') AS failed,
       extract(epoch FROM avg(started_at - enqueued_at))::double precision AS wait
FROM {ns}.results
WHERE finished_at > date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 1, 2
ORDER BY 2
"""


def timed(conn: psycopg.Connection[Any], query: Any) -> tuple[float, int]:
    started = time.perf_counter()
    rows = conn.execute(query).fetchall()
    return (time.perf_counter() - started) * 1000, len(rows)


def rollup_pass(conn: psycopg.Connection[Any], queries: Queries) -> tuple[float, int]:
    """One maintenance pass's rollup, as RollupStore.roll_up runs it (ms, results added)."""
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(queries["rollup_lock"], {"schema": NS})
        row = conn.execute(queries["rollup_results"]).fetchone()
        conn.execute(queries["rollup_prune"])
    return (time.perf_counter() - started) * 1000, int(row[1]) if row else 0


def back_to(conn: psycopg.Connection[Any], margin: str) -> None:
    """Move the watermark back to the minute of the newest result less ``margin``, and drop
    the rolled-up minutes from there (as if they had not been rolled up yet)."""
    conn.execute(
        q(
            "UPDATE {ns}.result_rollup SET rolled_to = date_bin('1 minute',"
            f" (SELECT max(finished_at) FROM {{ns}}.results) - {margin}, timestamptz '2000-01-01 00:00+00')",
            NS,
        )
    )
    again = "DELETE FROM {ns}.result_minutes WHERE minute >= (SELECT rolled_to FROM {ns}.result_rollup)"
    conn.execute(q(again, NS))


def run(dsn: str, rate: float, repeat: int) -> dict[str, Any]:
    ensure_database(dsn)
    migrate_fresh(dsn, NS)
    queries = Queries(NS)
    n = int(rate * 3600)
    report: dict[str, Any] = {"rate": rate, "rows": n, "load_before": os.getloadavg()}
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(q(FILL, NS), {"n": n, "step": 3600 / n})
        conn.execute(q("VACUUM (ANALYZE) {ns}.results", NS))
        log(f"{n:,} results in {time.perf_counter() - started:.0f} s")
        old = [timed(conn, q(OLD_DASH_MINUTES, NS)) for _ in range(repeat)]
        before = [timed(conn, queries["dash_minutes"]) for _ in range(repeat)]  # nothing rolled up
        first = rollup_pass(conn, queries)  # catch-up: the hour
        empty = [rollup_pass(conn, queries) for _ in range(repeat)]
        steady = []
        for _ in range(repeat):  # the newest 1-2 minutes again, as a pass does once a minute
            back_to(conn, "interval '1 minute'")
            steady.append(rollup_pass(conn, queries))
        rolled = [timed(conn, queries["dash_minutes"]) for _ in range(repeat)]  # no live tail
        back_to(conn, "interval '0'")  # the newest minute's results live, as within a minute
        tail = conn.execute(
            q(
                "SELECT count(*) FROM {ns}.results"
                " WHERE finished_at >= (SELECT rolled_to FROM {ns}.result_rollup)",
                NS,
            )
        ).fetchone()
        after = [timed(conn, queries["dash_minutes"]) for _ in range(repeat)]
    med = lambda xs: statistics.median(x[0] for x in xs)  # noqa: E731
    report |= {
        "old_dash_minutes_ms": med(old),
        "dash_minutes_not_rolled_up_ms": med(before),
        "dash_minutes_all_rolled_up_ms": med(rolled),
        "dash_minutes_with_live_minute_ms": med(after),
        "live_minute_results": tail[0] if tail else 0,
        "chart_rows": after[0][1],
        "first_pass_ms": first[0],
        "first_pass_results": first[1],
        "empty_pass_ms": med(empty),
        "one_minute_pass_ms": med(steady),
        "one_minute_pass_results": steady[0][1],
        "load_after": os.getloadavg(),
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(NS)))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rollup", description=__doc__)
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--rate", type=float, default=1160.0, help="results a second over the hour")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    report = run(args.dsn, args.rate, args.repeat)
    for key, value in report.items():
        print(f"{key}: {value:,.1f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"full results: {write_json('rollup', report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
