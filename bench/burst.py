"""``python -m bench burst``: a burst landing on a quiet queue vs the steady-state drain.

The burst: a worker already runs, idle, on a freshly migrated namespace (empty jobs
table, never analyzed: what the planner knows of a quiet queue); ``--jobs`` jobs
arrive at once with ``enqueue_many`` and are drained as they land, with no ANALYZE
(autovacuum emulation stays on, as default autovacuum would run). The steady state:
the ``throughput`` measurement of the same run, with an ANALYZE after its enqueue so
the statistics describe the backlog (what they are once autovacuum caught up). The
ratio burst / steady state is the cliff; the target is >= 0.8.
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
    """Steady-state drain and burst drain, interleaved ``repeat`` times; the best of each."""
    opts: dict[str, Any] = {
        "dsn": dsn,
        "namespace": namespace,
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "enqueue_batch": 5000 if jobs <= 200_000 else 10_000,
    }
    steady_runs: list[dict[str, Any]] = []
    burst_runs: list[dict[str, Any]] = []
    for _ in range(repeat):  # interleaved: both see the same background load
        steady_runs.append({"kind": "steady", **throughput(**opts, analyze=True)})
        burst_runs.append(burst_drain(**opts))
    steady = max(steady_runs, key=lambda r: r.get("jobs_per_s") or 0.0)
    best = max(burst_runs, key=lambda r: r.get("jobs_per_s") or 0.0)
    r = ratio(best["jobs_per_s"], steady["jobs_per_s"])
    return {
        # CPU per job moves much less than jobs/s with the machine's load (bench/README.md):
        # steady CPU / burst CPU is the burst's rate relative to steady state if CPU-bound.
        "cpu_ratio": ratio(steady.get("cpu_total_us_per_job"), best.get("cpu_total_us_per_job")),
        "steady_runs": steady_runs,
        "burst_runs": burst_runs,
        "steady": steady,
        "burst": best,
        "ratio": r,
        "target_ratio": TARGET_RATIO,
        "met": r is not None and r >= TARGET_RATIO,
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
            "burst / steady",
            "target",
        ]
    )
    for name, best, runs in (
        ("steady state (ANALYZE after the enqueue)", report["steady"], report["steady_runs"]),
        ("burst onto an idle worker's quiet queue (no ANALYZE)", report["burst"], report["burst_runs"]),
    ):
        is_burst = best is report["burst"]
        t.add(
            name,
            best["jobs"],
            best["jobs_per_s"],
            ", ".join(f"{r['jobs_per_s']:,.0f}" for r in runs),
            best.get("slowest_5s_jobs_per_s") if is_burst else "",
            cpu_cell(best),
            report["ratio"] if is_burst else "",
            f">= {TARGET_RATIO:g}: {'met' if report['met'] else 'MISSED'}" if is_burst else "",
        )
    return t
