"""``python -m bench results-scale``: what a big ``results`` table costs a drain and a prune.

Two namespaces in a database of their own (``bench_results``, so the CPU meter counts
only these backends): ``bench_rs_empty`` has an empty results table, ``bench_rs_big``
one pre-filled with ``--rows`` finished rows (default 10M), shaped like job_finish's:
UUIDv7-like text ids ordered by finished_at, finished_at spread over the past ``--days``
days, expires_at = finished_at + a TTL that leaves ``--expired`` of them expired, a
twentieth failed with an error, a small jsonb result for the others. The rows are built
once per run (INSERT ... SELECT generate_series with the secondary indexes and the
primary key dropped, then rebuilt, then VACUUM ANALYZE, as an aged table would be) and
reused: each big round drains into them and then deletes the rows it added (by
finished_at; no VACUUM after, as autovacuum would not run for 1% of dead rows either).

Rounds alternate empty / big (``--repeat`` each): TRUNCATE jobs (and the empty
namespace's results), enqueue ``--jobs`` no-ops, CHECKPOINT, drain with ``stem worker
run`` (``bench throughput``'s flags: P=2 C=200 M=4). Then the prune, as the worker's
maintenance runs it (JobStore.prune_results: result_prune, 5000 rows a call, each its own
transaction): alone, timing each call, through the first 1% of the big table and then the
next 9% (``--expired`` leaves 12% expired); then while a drain runs into the big table
(calls back to back, up to 1% more; the drain's rate, and every 50 ms the backends waiting
on a lock); then the same calls on a ``--small-rows`` table (1M): whether a call's cost
follows the table's size or the rows it deletes. ``--dashboard`` times the jobs page and
overview on the big table. Everything built is dropped at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from bench import bench_stem as bs
from bench.common import (
    Collector,
    Table,
    checkpoint,
    ensure_database,
    log,
    measure_drain,
    running,
    write_json,
)

DSN = "postgresql://postgres@127.0.0.1:5432/bench_results"
EMPTY, BIG, SMALL = "bench_rs_empty", "bench_rs_big", "bench_rs_small"
PRUNE_LIMIT = 5000  # JobStore.prune_results' default, what maintenance passes

FILL = """
INSERT INTO {ns}.results (id, task, queue, priority, state, result, error, attempts, enqueued_at,
                          started_at, finished_at, worker_id, expires_at)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(h, 14, 3) || '-8'
       || substr(h, 18, 3) || '-' || substr(h, 21, 12),
       (ARRAY['reports.build', 'mail.send', 'images.resize'])[1 + i %% 3],
       (ARRAY['default', 'mail', 'images', 'bulk'])[1 + i %% 4],
       (i %% 3)::smallint,
       CASE WHEN i %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN i %% 20 = 0 THEN NULL ELSE jsonb_build_object('n', i, 'ok', true) END,
       CASE WHEN i %% 20 = 0 THEN 'ValueError: bad input ' || i END,
       1, f - interval '40 ms', f - interval '5 ms', f, 'bench-host-' || (i %% 4),
       f + %(ttl)s * interval '1 s'
FROM (
    SELECT i, f, lpad(to_hex((extract(epoch FROM f) * 1000)::bigint), 12, '0') || md5(i::text) AS h
    FROM (SELECT i, now() - interval '1 minute' - (%(n)s - i) * %(step)s * interval '1 s' AS f
          FROM generate_series(1, %(n)s) AS i) AS t
) AS s
"""


def q(text: str, ns: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(ns))


def migrate_fresh(dsn: str, ns: str) -> None:
    from stem_pg.schema.migrate import migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q("DROP SCHEMA IF EXISTS {ns} CASCADE", ns))
    migrate(dsn, ns)


def build(dsn: str, ns: str, rows: int, days: float, expired: float) -> dict[str, Any]:
    """A results table of ``rows`` finished rows, ``expired`` of them past expires_at."""
    migrate_fresh(dsn, ns)
    span = days * 86400
    ttl = span * (1 - expired)
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'results'"
            " AND indexname <> 'results_pkey'",
            (ns,),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(ns), sql.Identifier(name)))
        conn.execute(q("ALTER TABLE {ns}.results DROP CONSTRAINT results_pkey", ns))
        conn.execute(q(FILL, ns), {"n": rows, "step": span / rows, "ttl": ttl})
        conn.execute(q("ALTER TABLE {ns}.results ADD CONSTRAINT results_pkey PRIMARY KEY (id)", ns))
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(q("VACUUM (ANALYZE) {ns}.results", ns))
        size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f'"{ns}".results',)).fetchone()
        size_bytes = int(size[0]) if size else 0
        count = conn.execute(q("SELECT count(*) FILTER (WHERE expires_at < now()) FROM {ns}.results", ns))
        n_expired = count.fetchone()[0]  # type: ignore[index]
    seconds = time.perf_counter() - started
    gib = size_bytes / 2**30
    log(f"{ns}: {rows:,} results rows ({n_expired:,} expired) in {seconds:.0f} s, {gib:.2f} GiB")
    return {
        "rows": rows,
        "expired_rows": n_expired,
        "build_seconds": seconds,
        "bytes": size[0] if size else 0,
    }


def drain(dsn: str, ns: str, jobs: int, *, during: Any = None) -> dict[str, Any]:
    """One round: empty jobs, enqueue ``jobs`` no-ops, drain them with bench throughput's worker."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q("TRUNCATE {ns}.jobs", ns))
        if ns == EMPTY:
            conn.execute(q("TRUNCATE {ns}.results", ns))
    bs.enqueue_backlog(dsn, ns, jobs, 5000)
    checkpoint(dsn)
    begun = time.time()
    with Collector() as collector:
        proc = bs.start_worker(
            dsn,
            ns,
            processes=bs.BEST_PROCESSES,
            concurrency=bs.BEST_CONCURRENCY,
            prefetch=bs.BEST_PREFETCH,
            probe_path=collector.path,
            name=f"stem-{ns}",
        )
        with running([proc]):
            side = during() if during else None
            try:
                row = measure_drain(collector, [proc], jobs, max(120.0, jobs / 500), ns, dsn)
                bs.wait_empty(dsn, ns, 60.0)
            finally:
                extra = side.stop() if side else {}
    time.sleep(0.3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if ns != EMPTY:  # the big table goes back to its built rows
            conn.execute(q("DELETE FROM {ns}.results WHERE finished_at >= to_timestamp(%s)", ns), (begun,))
    log(f"{ns}: {row['jobs_per_s']:,.0f} jobs/s, {row.get('cpu_total_us_per_job', 0):.0f} us CPU/job")
    return {"namespace": ns, "jobs": jobs, **row, **extra}


def prune_call(conn: psycopg.Connection[Any], query: str) -> tuple[int, float]:
    """One JobStore.prune_results call (result_prune, limit 5000, autocommit as maintenance runs it)."""
    started = time.perf_counter()
    cur = conn.execute(query, {"limit": PRUNE_LIMIT})
    return cur.rowcount, (time.perf_counter() - started) * 1000


def prune_sql(ns: str) -> str:
    from stem_pg.db.queries import queries_for

    return queries_for(ns)["result_prune"]


class PruneAlongside:
    """Prune calls back to back on another connection while a drain runs; lock waits sampled."""

    def __init__(self, dsn: str, ns: str, rows: int) -> None:
        self.dsn, self.ns, self.rows = dsn, ns, rows
        self.calls: list[tuple[int, float]] = []
        self.lock_samples: list[int] = []
        self.lock_events: dict[str, int] = {}  # wait_event (relation, tuple, extend...) -> samples
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._prune), threading.Thread(target=self._sample)]
        for t in self.threads:
            t.start()

    def _prune(self) -> None:
        query = prune_sql(self.ns)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.is_set() and sum(c[0] for c in self.calls) < self.rows:
                self.calls.append(prune_call(conn, query))
                if self.calls[-1][0] == 0:
                    break

    def _sample(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.wait(0.05):
                rows = conn.execute(
                    "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ).fetchall()
                self.lock_samples.append(len(rows))
                for (event,) in rows:
                    self.lock_events[event] = self.lock_events.get(event, 0) + 1

    def stop(self) -> dict[str, Any]:
        self.done.set()
        for t in self.threads:
            t.join()
        ms = [c[1] for c in self.calls]
        waits = self.lock_samples
        return {
            "prune_calls": len(self.calls),
            "prune_rows": sum(c[0] for c in self.calls),
            "prune_call_ms_avg": sum(ms) / len(ms) if ms else 0.0,
            "prune_call_ms_max": max(ms, default=0.0),
            "lock_wait_samples": len(waits),
            "lock_wait_share": sum(1 for w in waits if w) / len(waits) if waits else 0.0,
            "lock_waiters_max": max(waits, default=0),
            "lock_wait_events": self.lock_events,
        }


def prune_until(dsn: str, ns: str, target_rows: int) -> dict[str, Any]:
    """Prune calls until ``target_rows`` more rows are gone (or nothing is expired)."""
    query = prune_sql(ns)
    calls: list[tuple[int, float]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        while sum(c[0] for c in calls) < target_rows:
            calls.append(prune_call(conn, query))
            if calls[-1][0] == 0:
                break
    ms = sorted(c[1] for c in calls)
    rows = sum(c[0] for c in calls)
    return {
        "rows": rows,
        "calls": len(calls),
        "total_s": sum(ms) / 1000,
        "call_ms_p50": ms[len(ms) // 2] if ms else 0.0,
        "call_ms_max": ms[-1] if ms else 0.0,
        "us_per_row": sum(ms) * 1000 / rows if rows else 0.0,
    }


def dashboard(dsn: str, ns: str, repeat: int) -> dict[str, Any]:
    import httpx

    from bench.dashboard_pages import serve, timed

    with psycopg.connect(dsn, autocommit=True) as conn:
        some = conn.execute(q("SELECT id FROM {ns}.results ORDER BY finished_at DESC LIMIT 1 OFFSET 777", ns))
        some_id = some.fetchone()[0]  # type: ignore[index]
    targets = {
        "jobs, first page": "/jobs",
        "jobs, state=failed": "/jobs?state=failed",
        "jobs, since 10m": "/jobs?since=10m",
        "jobs, search by id": f"/jobs?q={some_id}",
        "job detail": f"/jobs/{some_id}",
        "overview": "/",
    }
    server, thread, base = serve(dsn, ns)
    try:
        with httpx.Client(timeout=120) as client:
            return timed(client, base, targets, repeat)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run(args: Any) -> dict[str, Any]:
    dsn = args.dsn
    ensure_database(dsn)
    report: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "func"}}
    report["load_before"] = os.getloadavg()
    migrate_fresh(dsn, EMPTY)
    report["big"] = build(dsn, BIG, args.rows, args.days, args.expired)
    rounds: list[dict[str, Any]] = []
    for i in range(args.repeat):
        for ns in (EMPTY, BIG) if i % 2 == 0 else (BIG, EMPTY):
            rounds.append(drain(dsn, ns, args.jobs))
    report["rounds"] = rounds
    if args.dashboard:
        report["dashboard"] = {"big": dashboard(dsn, BIG, 10)}
    # Standalone first (the first 1% of the table, then the next 9%), then alongside a drain
    # (up to 1% more: --expired leaves 12% expired by default), then the 1M-row reference.
    report["prune_big"] = {
        "first 1%": prune_until(dsn, BIG, args.rows // 100),
        "next 9%": prune_until(dsn, BIG, args.rows * 9 // 100),
    }
    report["drain_with_prune"] = drain(
        dsn, BIG, args.jobs, during=lambda: PruneAlongside(dsn, BIG, args.rows // 100)
    )
    report["small"] = build(dsn, SMALL, args.small_rows, args.days, args.expired)
    report["prune_small"] = {
        "first 1%": prune_until(dsn, SMALL, args.small_rows // 100),
        "next 9%": prune_until(dsn, SMALL, args.small_rows * 9 // 100),
    }
    report["load_after"] = os.getloadavg()
    if not args.keep:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for ns in (EMPTY, BIG, SMALL):
                conn.execute(q("DROP SCHEMA IF EXISTS {ns} CASCADE", ns))
    return report


def tables(report: dict[str, Any]) -> str:
    drains = Table(["round", "results rows", "jobs/s", "CPU us/job worker", "PG", "total", "load 1m"])
    for i, r in enumerate(report["rounds"] + [report["drain_with_prune"]]):
        name = "big + prune" if "prune_calls" in r else r["namespace"]
        rows = report["big"]["rows"] if r["namespace"] == BIG else 0
        drains.add(
            f"{i + 1} {name}",
            rows,
            r["jobs_per_s"],
            r.get("cpu_worker_us_per_job"),
            r.get("cpu_postgres_us_per_job"),
            r.get("cpu_total_us_per_job"),
            r["load_avg_1m"],
        )
    out = [drains.markdown()]
    by = {ns: [r for r in report["rounds"] if r["namespace"] == ns] for ns in (EMPTY, BIG)}

    def mean(ns: str, key: str) -> float:
        return float(sum(r.get(key, 0.0) for r in by[ns])) / max(1, len(by[ns]))

    out.append(
        f"\nbig / empty: jobs/s {mean(BIG, 'jobs_per_s') / mean(EMPTY, 'jobs_per_s'):.3f}, CPU us/job "
        f"{mean(BIG, 'cpu_total_us_per_job') / mean(EMPTY, 'cpu_total_us_per_job'):.3f} (means of the rounds)"
    )
    prunes = Table(["prune", "table rows", "rows pruned", "calls", "seconds", "ms/call p50", "max", "us/row"])
    for label, key, build_key in (("big", "prune_big", "big"), ("small", "prune_small", "small")):
        for step, p in report[key].items():
            prunes.add(
                f"{label} {step}", report[build_key]["rows"], p["rows"], p["calls"], p["total_s"],
                p["call_ms_p50"], p["call_ms_max"], p["us_per_row"],
            )  # fmt: skip
    out += ["", prunes.markdown()]
    w = report["drain_with_prune"]
    out.append(
        f"\nprune alongside a drain: {w['prune_calls']} calls, {w['prune_rows']:,} rows, "
        f"{w['prune_call_ms_avg']:.1f} ms/call avg ({w['prune_call_ms_max']:.0f} max); "
        f"a backend waited on a lock in {w['lock_wait_share']:.1%} of {w['lock_wait_samples']} samples "
        f"(max {w['lock_waiters_max']} at once)"
    )
    if "dashboard" in report:
        dash = Table(["page (big table)", "p50 ms", "p95 ms", "max ms"])
        for page, t in report["dashboard"]["big"].items():
            dash.add(page, t["p50_ms"], t["p95_ms"], t["max_ms"])
        out += ["", dash.markdown()]
    out.append(f"\nload average before {report['load_before']}, after {report['load_after']}")
    return "\n".join(out)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("results-scale", help="drain and prune cost with a 10M-row results table vs empty")
    p.add_argument("--results-dsn", dest="rs_dsn", default=DSN, help="a database of its own (%(default)s)")
    p.add_argument("--rows", type=int, default=10_000_000, help="rows of the big results table")
    p.add_argument("--small-rows", type=int, default=1_000_000, help="rows of the prune reference table")
    p.add_argument("--days", type=float, default=7.0, help="finished_at spread over this many days")
    p.add_argument("--expired", type=float, default=0.12, help="share of rows already expired")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3, help="rounds of each (interleaved)")
    p.add_argument("--dashboard", action="store_true", help="also time the dashboard on the big table")
    p.add_argument("--keep", action="store_true", help="keep the namespaces (default: dropped)")


def main(args: Any) -> int:
    args.dsn = args.rs_dsn
    report = run(args)
    print(tables(report))
    print(f"\nfull results: {write_json('results_scale', report)}")
    return 0
