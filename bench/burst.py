"""``python -m bench burst``: a burst landing on a quiet queue vs the steady-state drain.

Three drains of ``--jobs`` no-ops, each on a freshly migrated namespace, same worker
options, interleaved (``--repeat``):

* steady state: ``throughput`` with an ANALYZE after the enqueue, so the statistics
  describe the backlog (what they are once autovacuum caught up);
* burst onto an idle worker: a worker already runs, idle, on the empty, never-analyzed
  table (its claim planned and cached there, as on a quiet queue); the jobs arrive at
  once with ``enqueue_many`` and it drains them as they land, no ANALYZE;
* burst as a backlog: ``throughput`` with no ANALYZE, the worker started once the jobs
  are in (its first claim planned on the full, never-analyzed table).

Autovacuum emulation runs as for any drain. Each burst / steady-state rate is a
cliff if below the target, 0.8.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.bench_stem import (
    AUTOVACUUM,
    RssSampler,
    count_rows,
    cpu_cell,
    make_app,
    reset,
    start_worker,
    throughput,
    wait_empty,
)
from bench.common import (
    DEFAULT_DSN,
    AutovacuumEmulation,
    BenchError,
    Collector,
    Proc,
    Table,
    chunks,
    log,
    measure_drain,
    ratio,
    running,
)
from bench.pgqueuer_compare import wait_sample

TARGET_RATIO = 0.8
# The worker's own defaults (`stem worker run`): claims of a few jobs each, so what one
# claim costs decides the rate. With bench's best configuration (P=2 C=200 M=4) claims of
# hundreds of jobs spread that cost thinly: `--processes 2 --concurrency 200 --prefetch 4`.
PROCESSES = 1
CONCURRENCY = 10
PREFETCH = 2


def table_stats(dsn: str, namespace: str) -> dict[str, Any]:
    """What the planner knows of the jobs table, and how often it was analyzed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT c.reltuples, c.relpages, s.analyze_count + s.autoanalyze_count"
            " FROM pg_class c JOIN pg_stat_all_tables s ON s.relid = c.oid"
            " WHERE c.oid = %s::regclass",
            (f'"{namespace}".jobs',),
        ).fetchone()
    if row is None:
        return {}
    return {"reltuples": float(row[0]), "relpages": int(row[1]), "analyzes": int(row[2])}


def wait_idle(dsn: str, namespace: str, app: Any, collector: Collector, proc: Proc, processes: int) -> None:
    """Until every worker process is registered and one has run a job (``lat``, which the
    throughput tally does not count): the worker is up, listening, and idle."""
    deadline = time.monotonic() + 60
    while True:
        proc.check_alive()
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                f'SELECT count(*) FROM "{namespace}".workers WHERE stopped_at IS NULL'
            ).fetchone()
        t = time.time()
        app.enqueue("lat", {"t": t})
        if row and row[0] >= processes and wait_sample(collector, t, 2.0) is not None:
            break
        if time.monotonic() > deadline:
            raise BenchError("burst: the worker never became ready")
    time.sleep(2.0)  # a few idle polls: the claim is planned on the quiet, empty table
    collector.drain()


def burst_drain(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    jobs: int = 100_000,
    processes: int = PROCESSES,
    concurrency: int = CONCURRENCY,
    prefetch: int = PREFETCH,
    enqueue_batch: int = 5000,
    timeout: float | None = None,
) -> dict[str, Any]:
    """``jobs`` no-ops enqueued at once onto an idle worker's empty, never-analyzed queue."""
    from stem_pg.client.app import EnqueueRequest

    label = f"stem_pg burst P={processes} C={concurrency} M={prefetch}"
    log(f"{label}: reset, start an idle worker, then enqueue {jobs:,} at once (no ANALYZE)")
    reset(dsn, namespace)
    timeout = timeout or max(120.0, jobs / 1000 + 60)
    app = make_app(dsn, namespace)
    try:
        with Collector() as collector:
            proc = start_worker(
                dsn,
                namespace,
                processes=processes,
                concurrency=concurrency,
                prefetch=prefetch,
                probe_path=collector.path,
                name="stem-burst",
            )
            sampler = RssSampler(proc)
            tables = [f'"{namespace}".jobs', f'"{namespace}".results']
            with running([proc]), AutovacuumEmulation(dsn, tables, **AUTOVACUUM) as vacuums:
                wait_idle(dsn, namespace, app, collector, proc, processes)
                before = table_stats(dsn, namespace)
                request = EnqueueRequest("noop")
                timeline: list[tuple[float, int]] = []  # (s since the burst began, jobs started)
                start = time.perf_counter()

                def tick() -> None:
                    sampler()
                    now = time.perf_counter() - start
                    if not timeline or now - timeline[-1][0] >= 1.0:
                        timeline.append((round(now, 1), collector.total))

                for size in chunks(jobs, enqueue_batch):
                    app.enqueue_many([request] * size)
                    collector.drain()  # read the tallies sent meanwhile
                    tick()
                enqueue_seconds = time.perf_counter() - start
                drain = measure_drain(collector, [proc], jobs, timeout, label, dsn, tick)
                left = wait_empty(dsn, namespace, 60.0)
                time.sleep(0.3)  # the last outcomes' flush
                results = count_rows(dsn, namespace, "results")
                after = table_stats(dsn, namespace)
    finally:
        app.close()
    log(f"{label}: {drain['jobs_per_s']:,.0f} jobs/s")
    return {
        "system": "stem_pg",
        "kind": "burst",
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "task": "noop",
        **drain,
        "left_in_queue": left,
        "results_rows": results - 1,  # less the warm-up `lat` job
        "enqueue_seconds": enqueue_seconds,
        "stats_before": before,
        # the slowest 5 s of the drain: the depth of a cliff, if there is one
        "slowest_5s_jobs_per_s": _slowest(timeline, jobs, 5.0),
        "timeline": timeline,
        # analyzes during the drain: only the autovacuum emulation's (or the server's)
        "analyzes_during_drain": after.get("analyzes", 0) - before.get("analyzes", 0),
        "autovacuum_emulated": vacuums.active,
        "vacuums": vacuums.events,
    }


def _slowest(timeline: list[tuple[float, int]], jobs: int, window: float) -> float | None:
    """The lowest jobs/s over ``window`` seconds between the first and the last job started."""
    rates = []
    for i, (at, started) in enumerate(timeline):
        if started == 0:
            continue
        for later, more in timeline[i + 1 :]:
            if more >= jobs:
                break
            if later - at >= window:
                rates.append((more - started) / (later - at))
                break
    return min(rates, default=None)


def burst(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    jobs: int = 100_000,
    processes: int = PROCESSES,
    concurrency: int = CONCURRENCY,
    prefetch: int = PREFETCH,
    repeat: int = 1,
) -> dict[str, Any]:
    """The steady-state drain and both bursts, interleaved ``repeat`` times; the best of each."""
    opts: dict[str, Any] = {
        "dsn": dsn,
        "namespace": namespace,
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "enqueue_batch": 5000 if jobs <= 200_000 else 10_000,
    }
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for _ in range(repeat):  # interleaved: all see the same background load
        runs["steady"].append({"kind": "steady", **throughput(**opts, analyze=True)})
        runs["burst"].append(burst_drain(**opts))
        runs["backlog"].append({"kind": "backlog", **throughput(**opts)})
    report: dict[str, Any] = {"target_ratio": TARGET_RATIO}
    for kind in KINDS:
        report[f"{kind}_runs"] = runs[kind]
        report[kind] = max(runs[kind], key=lambda r: r.get("jobs_per_s") or 0.0)
    steady = report["steady"]
    for kind in ("burst", "backlog"):
        best = report[kind]
        report[f"{kind}_ratio"] = ratio(best["jobs_per_s"], steady["jobs_per_s"])
        # CPU per job moves much less than jobs/s with the machine's load (bench/README.md):
        # steady CPU / burst CPU is the burst's rate relative to steady state if CPU-bound.
        report[f"{kind}_cpu_ratio"] = ratio(
            steady.get("cpu_total_us_per_job"), best.get("cpu_total_us_per_job")
        )
    report["met"] = all((report[f"{k}_ratio"] or 0) >= TARGET_RATIO for k in ("burst", "backlog"))
    return report


KINDS = ("steady", "burst", "backlog")
LABELS = {
    "steady": "steady state: backlog, ANALYZE, then the worker",
    "burst": "burst onto an idle worker's quiet queue (no ANALYZE)",
    "backlog": "burst as a backlog, then the worker (no ANALYZE)",
}


def burst_table(report: dict[str, Any]) -> Table:
    t = Table(
        [
            "drain",
            "jobs",
            "jobs/s (best run)",
            "runs, jobs/s",
            "slowest 5 s, jobs/s",
            "CPU us/job (worker+PG)",
            "/ steady: jobs/s (CPU)",
            f"target >= {TARGET_RATIO:g}",
        ]
    )
    for kind in KINDS:
        best = report[kind]
        r, cpu = report.get(f"{kind}_ratio"), report.get(f"{kind}_cpu_ratio")
        t.add(
            LABELS[kind],
            best["jobs"],
            best["jobs_per_s"],
            ", ".join(f"{run['jobs_per_s']:,.0f}" for run in report[f"{kind}_runs"]),
            best.get("slowest_5s_jobs_per_s", ""),
            cpu_cell(best),
            f"{r:.2f} ({cpu:.2f})" if r is not None and cpu is not None else "",
            ("met" if (r or 0) >= TARGET_RATIO else "MISSED") if kind != "steady" else "",
        )
    return t
