"""``python -m bench.dashboard_pages``: how fast the dashboard's jobs page answers on a big namespace.

A freshly migrated namespace gets ``--jobs`` jobs through ``enqueue_many`` (the user's
path), spread over 4 queues and 3 tasks; then ``--finished`` of them are moved to the
results table in one statement (a fifth of those as failed), as a drained worker would
have left them (running a worker through 50k jobs would time the worker, not the page).
No ANALYZE (the product runs none): the pages are timed on what a fresh table tells the
planner, then once more after an ANALYZE, as autovacuum would eventually run.

The dashboard runs in uvicorn on a thread; each page is fetched ``--repeat`` times over
HTTP (httpx, keep-alive) after one untimed fetch. Target: p95 under 200 ms. A page load of
the overview always reads the database; its live refresh (htmx, ``HX-Request: true``) may
share the namespace's snapshot of the last second (stem_pg/dashboard/snapshots.py), which
is what many open overviews cost: "overview, live refresh" times that.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from bench.common import Table, chunks, ensure_database, log, percentile, write_json

DSN = "postgresql://postgres@127.0.0.1:5432/bench_stem"
NAMESPACE = "bench_dash"


def fill(dsn: str, ns: str, jobs: int, finished: int) -> None:
    from stem_pg.client.app import Stem
    from stem_pg.config.settings import StemConfig
    from stem_pg.core.planning import EnqueueRequest
    from stem_pg.schema.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(ns)))
    migrate(dsn, ns)
    app = Stem(dsn, namespace=ns, config=StemConfig())
    tasks, queues = ["reports.build", "mail.send", "images.resize"], ["default", "mail", "images", "bulk"]
    done = 0
    for size in chunks(jobs, 5000):
        app.enqueue_many(
            [EnqueueRequest(tasks[i % 3], {"n": i}, queue=queues[i % 4]) for i in range(done, done + size)]
        )
        done += size
    app.close()
    table = sql.Identifier(ns)
    move = sql.SQL("""
        WITH gone AS (
            DELETE FROM {ns}.jobs WHERE id IN (SELECT id FROM {ns}.jobs ORDER BY seq LIMIT %(n)s)
            RETURNING id, task, queue, priority, enqueued_at, seq
        )
        INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                                  started_at, finished_at)
        SELECT id, task, queue, priority,
               CASE WHEN seq %% 5 = 0 THEN 'failed' ELSE 'succeeded' END,
               CASE WHEN seq %% 5 = 0 THEN 'ValueError: bad input ' || seq END,
               1, enqueued_at, enqueued_at, now()
        FROM gone
    """).format(ns=table)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(move, {"n": finished})


def serve(dsn: str, ns: str) -> tuple[Any, threading.Thread, str]:
    import socket

    import uvicorn

    from stem_pg.dashboard import DashboardAuth, create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(dsn, ns, auth=DashboardAuth()), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}/n/{ns}"


def pages(client: Any, base: str) -> dict[str, str]:
    """The pages to time; the deep one is reached by following 20 "older" links."""
    path = "/jobs"
    for _ in range(20):
        page = client.get(base + path).text
        start = page.index('class="next" href="') + len('class="next" href="')
        path = "/jobs" + page[start : page.index('"', start)].replace("&amp;", "&")
    some_id = client.get(base + "/jobs?state=queued").text.split("/jobs/")[1].split('"')[0]
    return {
        "first page": "/jobs",
        "page 21 (keyset)": path,
        "state=failed": "/jobs?state=failed",
        "queue=mail, task=mail.send": "/jobs?queue=mail&task=mail.send",
        "since 10m": "/jobs?since=10m",
        "search by id": f"/jobs?q={some_id}",
        "search error text": "/jobs?q=bad+input+4",
        "overview": "/",
        "overview, live refresh": "/",
        "dead letters": "/dead",
    }


def timed(client: Any, base: str, targets: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for name, path in targets.items():
        headers = {"HX-Request": "true"} if name.endswith("live refresh") else {}
        assert client.get(base + path, headers=headers).status_code == 200, path
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            answer = client.get(base + path, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200
        found[name] = {
            "p50_ms": percentile(samples, 50),
            "p95_ms": percentile(samples, 95),
            "max_ms": max(samples),
        }
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--finished", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import httpx

    ensure_database(args.dsn)
    log(f"filling {args.namespace}: {args.jobs} jobs, {args.finished} of them finished")
    fill(args.dsn, args.namespace, args.jobs, args.finished)
    server, thread, base = serve(args.dsn, args.namespace)
    results: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=30) as client:
            targets = pages(client, base)
            results["fresh"] = timed(client, base, targets, args.repeat)
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ANALYZE {ns}.jobs, {ns}.results").format(ns=sql.Identifier(args.namespace))
                )
            results["analyzed"] = timed(client, base, targets, args.repeat)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    table = Table(["page", "p50 ms", "p95 ms", "p50 ms (analyzed)", "p95 ms (analyzed)"])
    for name, fresh in results["fresh"].items():
        analyzed = results["analyzed"][name]
        table.add(name, fresh["p50_ms"], fresh["p95_ms"], analyzed["p50_ms"], analyzed["p95_ms"])
    print(table.markdown())
    write_json("dashboard_pages", {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
