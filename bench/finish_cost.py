"""What reporting the skipped ids costs ``job_finish`` (many hosts, 2026-12-01).

``python -m bench.finish_cost [--rounds 10] [--batch 100]``: claims ``--batch`` jobs and
finishes them in one statement, with today's ``job_finish`` (which also returns the ids whose
lease token no longer matched) and with the statement before it (count and NOTIFY only), in
interleaved rounds on one connection; prints p50 / p90 / mean of the finish in ms per batch
and writes bench/out/finish_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import DEFAULT_DSN, ensure_database
from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.config.settings import StemConfig
from stem_pg.db.queries import Queries
from stem_pg.schema.migrate import migrate

#: The end of job_finish before it returned the skipped ids.
BEFORE_TAIL = """SELECT count(*) AS finished,
       pg_notify(%(channel)s,
                 CASE WHEN sum(length(id) + 1) < 7900 THEN string_agg(id, ',') ELSE '*' END)
FROM done
HAVING count(*) > 0"""


def statements(queries: Queries) -> dict[str, str]:
    now = queries["job_finish"]
    tail = now.index("SELECT (SELECT count(*) FROM done)")
    return {"now": now, "before": now[:tail] + BEFORE_TAIL}


def run(dsn: str, rounds: int, batch: int) -> dict[str, list[float]]:
    ensure_database(dsn)
    namespace = f"bench-finish-{uuid.uuid4().hex[:6]}"
    migrate(dsn, namespace)
    queries = Queries(namespace)
    texts = statements(queries)
    app = Stem(dsn, namespace=namespace, config=StemConfig())
    timings: dict[str, list[float]] = {"before": [], "now": []}
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(rounds * 2):
                kind = ("before", "now")[(i + i // 2) % 2]
                app.enqueue_many(EnqueueRequest("bench.t", {"i": n}) for n in range(batch))
                token = str(uuid.uuid4())
                claimed = conn.execute(
                    queries["job_claim"],
                    {"queue": "default", "limit": batch, "worker_id": "bench", "token": token,
                     "lease_seconds": 60, "tasks": None},
                ).fetchall()  # fmt: skip
                outcomes = [[row[0], token, "succeeded", "1", None, None, None, True] for row in claimed]
                channel = queries.channels.done
                params = {"outcomes": json.dumps(outcomes), "result_ttl": 60, "channel": channel}
                start = time.perf_counter()
                finished = conn.execute(texts[kind], params).fetchone()
                assert len(claimed) == batch and finished is not None and finished[0] == batch
                timings[kind].append((time.perf_counter() - start) * 1000)
    finally:
        app.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(namespace)))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.finish_cost", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    summary = {}
    for kind, xs in run(args.dsn, args.rounds, args.batch).items():
        xs.sort()
        summary[kind] = {"n": len(xs), "p50": xs[len(xs) // 2], "p90": xs[int(len(xs) * 0.9)],
                         "mean": statistics.mean(xs)}  # fmt: skip
        print(
            f"job_finish {kind:>6}: {len(xs)} batches of {args.batch}, p50 {summary[kind]['p50']:.3f} ms,"
            f" p90 {summary[kind]['p90']:.3f} ms, mean {summary[kind]['mean']:.3f} ms"
        )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "finish_cost.json").write_text(json.dumps({"batch": args.batch, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
