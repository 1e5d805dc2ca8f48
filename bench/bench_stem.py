"""stem_pg benchmarks: throughput, enqueue, latency, RSS, big backlog; ``all`` adds pgqueuer.

``python -m bench <command> --help`` for each command's options; bench/README.md
says what each one measures and how. Results go to bench/out/*.json and a
Markdown table is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from bench import celery_compare as cel
from bench import pgqueuer_compare as pgq
from bench.celery_broker import parse_brokers
from bench.common import (
    DEFAULT_DSN,
    DEFAULT_PGQ_DSN,
    PROBE_ENV,
    SIGNING_ENV,
    AutovacuumEmulation,
    BenchError,
    Collector,
    Proc,
    Table,
    bench_signing,
    checkpoint,
    chunks,
    ensure_database,
    install_signal_cleanup,
    latency_summary,
    log,
    measure_drain,
    proc_status,
    running,
    spawn,
    stop_all,
    write_json,
)
from bench.connections import ConnectionSampler
from bench.summary import summary

# The best configuration found by `python -m bench sweep` on the reference machine
# (2 cores, PG 15): see bench/RESULTS.md. `all` uses these unless told otherwise.
BEST_PROCESSES = 2
BEST_CONCURRENCY = 200
BEST_PREFETCH = 4
# pgqueuer's best batch size for the same process count (`pgqueuer_compare sweep`).
PGQ_BEST_BATCH = 500
PGQ_BEST_DRIVER = "apg"

# Keyword arguments of AutovacuumEmulation for throughput runs (both systems);
# `--no-autovacuum-emulation` sets {"enabled": False}.
AUTOVACUUM: dict[str, Any] = {}


# -- database helpers ----------------------------------------------------------------


def reset(dsn: str, namespace: str) -> None:
    """Drop the namespace schema and migrate it again: empty tables, fresh statistics."""
    from stem_pg.schema.migrate import migrate

    ensure_database(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace)))
    migrate(dsn, namespace)
    checkpoint(dsn)


def count_rows(dsn: str, namespace: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(namespace), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        return int(row[0]) if row else -1


def analyze_jobs(dsn: str, namespace: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(sql.Identifier(namespace)))


def wait_empty(dsn: str, namespace: str, timeout: float, tick: Callable[[], None] | None = None) -> int:
    """Poll until the jobs table is empty (or ``timeout``); returns the rows left."""
    deadline = time.monotonic() + timeout
    left = count_rows(dsn, namespace, "jobs")
    while left and time.monotonic() < deadline:
        if tick is not None:
            tick()
        time.sleep(0.25)
        left = count_rows(dsn, namespace, "jobs")
    return left


def vacuum_count(dsn: str, namespace: str, table: str) -> int:
    """VACUUMs of a table since its schema was made (manual ones and autovacuum's)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT vacuum_count + autovacuum_count FROM pg_stat_all_tables"
            " WHERE schemaname = %s AND relname = %s",
            (namespace, table),
        ).fetchone()
        return int(row[0]) if row else -1


def make_app(dsn: str, namespace: str) -> Any:
    from stem_pg.client.app import Stem
    from stem_pg.config.settings import StemConfig

    return Stem(dsn, namespace=namespace, config=StemConfig(), signing=bench_signing())


def spread_queues(queues: int) -> list[str]:
    """The queues of a spread backlog (``--queues N``): ``default`` alone for 1."""
    return ["default"] if queues <= 1 else [f"spread{i}" for i in range(queues)]


def enqueue_backlog(
    dsn: str, namespace: str, jobs: int, batch: int, task: str = "noop", queues: int = 1, priorities: int = 1
) -> float:
    """``enqueue_many`` ``jobs`` jobs in batches of ``batch``; returns the seconds taken.
    ``queues`` x ``priorities`` > 1: the jobs go round-robin over every (queue, priority)
    pair of ``spread_queues(queues)`` and priorities 0 .. ``priorities`` - 1."""
    from stem_pg.client.app import EnqueueRequest

    app = make_app(dsn, namespace)
    try:
        request = EnqueueRequest(task)
        kinds = [request]
        if queues > 1 or priorities > 1:
            kinds = [
                EnqueueRequest(task, queue=q, priority=p)
                for q in spread_queues(queues)
                for p in range(priorities)
            ]
        app.enqueue_many([request])  # open the pool outside the timing
        start = time.perf_counter()
        done = 0
        for size in chunks(jobs, batch):
            if len(kinds) == 1:
                app.enqueue_many([request] * size)
            else:
                app.enqueue_many([kinds[(done + i) % len(kinds)] for i in range(size)])
            done += size
        elapsed = time.perf_counter() - start
    finally:
        app.close()
    with psycopg.connect(dsn, autocommit=True) as conn:  # drop the warm-up job
        conn.execute(
            sql.SQL("DELETE FROM {}.jobs WHERE seq = (SELECT min(seq) FROM {}.jobs)").format(
                sql.Identifier(namespace), sql.Identifier(namespace)
            )
        )
    return elapsed


#: Extra ``stem worker run`` flags of every worker the harness starts (from its own flags).
WORKER_FLAGS: list[str] = []


def start_worker(
    dsn: str,
    namespace: str,
    *,
    processes: int,
    concurrency: int,
    prefetch: int,
    probe_path: str,
    name: str,
    queues: Sequence[str] = (),
) -> Proc:
    """``stem worker run`` of bench.stem_app; ``queues``: its ``-Q`` list (else the default queue)."""
    argv = [
        sys.executable,
        "-m",
        "stem_pg",
        "worker",
        "run",
        "--app",
        "bench.stem_app:app",
        "--namespace",
        namespace,
        "--processes",
        str(processes),
        "--concurrency",
        str(concurrency),
        "--prefetch-multiplier",
        str(prefetch),
        *WORKER_FLAGS,
        *(flag for q in queues for flag in ("--queue", q)),
    ]
    env = {PROBE_ENV: probe_path, "BENCH_DSN": dsn, "BENCH_NAMESPACE": namespace}
    return spawn(name, argv, env)


class RssSampler:
    """Largest VmRSS seen over the worker processes (children of a supervisor, or itself)."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.max_kb = 0
        self.threads = 0
        self.started = time.monotonic()
        self.timeline: list[tuple[float, float]] = []  # (seconds, MB of the largest worker), ~1/s

    def __call__(self) -> None:
        largest = 0
        for pid in self.proc.worker_pids():
            status = proc_status(pid)
            largest = max(largest, status.get("VmRSS", 0))
            self.threads = max(self.threads, status.get("Threads", 0))
        self.max_kb = max(self.max_kb, largest)
        now = time.monotonic() - self.started
        if not self.timeline or now - self.timeline[-1][0] >= 1.0:
            self.timeline.append((round(now, 1), round(largest / 1024, 1)))

    def hwm_kb(self) -> int:
        return max((proc_status(pid).get("VmHWM", 0) for pid in self.proc.worker_pids()), default=0)


# -- benchmarks ----------------------------------------------------------------------


def throughput(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    jobs: int = 100_000,
    processes: int = BEST_PROCESSES,
    concurrency: int = BEST_CONCURRENCY,
    prefetch: int = BEST_PREFETCH,
    task: str = "noop",
    enqueue_batch: int = 5000,
    timeout: float | None = None,
    autovacuum: dict[str, Any] | None = None,
    analyze: bool = False,
    queues: int = 1,
    priorities: int = 1,
) -> dict[str, Any]:
    """Enqueue a backlog of ``jobs`` no-op jobs, then drain it with one worker command.

    The rate is ``jobs / (last handler start - first handler start)`` over all worker
    processes: worker start-up is not counted (``wall_seconds_incl_startup`` is).
    Nothing ANALYZEs the backlog before the drain (the planner sees what a fresh
    migration left it) unless ``analyze``: ``burst``'s steady-state reference.
    ``queues`` x ``priorities``: the backlog spread over that many queues (all of which
    the worker consumes, ``-Q`` each) and priorities. The stem_pg connections each worker
    process holds are counted meanwhile (bench/connections.py)."""
    spread = f" queues={queues} priorities={priorities}" if queues > 1 or priorities > 1 else ""
    label = f"stem_pg P={processes} C={concurrency} M={prefetch} task={task}{spread}"
    autovacuum = AUTOVACUUM if autovacuum is None else autovacuum
    log(f"{label}: reset + enqueue {jobs:,}")
    reset(dsn, namespace)
    enqueue_seconds = enqueue_backlog(dsn, namespace, jobs, enqueue_batch, task, queues, priorities)
    if analyze:
        analyze_jobs(dsn, namespace)
    timeout = timeout or max(120.0, jobs / 1000 + 60)
    with Collector() as collector:
        proc = start_worker(
            dsn,
            namespace,
            processes=processes,
            concurrency=concurrency,
            prefetch=prefetch,
            probe_path=collector.path,
            name="stem-throughput",
            queues=spread_queues(queues) if queues > 1 else (),
        )
        sampler = RssSampler(proc)
        connections = ConnectionSampler(dsn, proc)

        def tick() -> None:
            sampler()
            connections()

        tables = [f'"{namespace}".jobs', f'"{namespace}".results']
        with running([proc]), AutovacuumEmulation(dsn, tables, **autovacuum) as vacuums:
            spawned = time.time()
            try:
                drain = measure_drain(collector, [proc], jobs, timeout, label, dsn, tick)
                connections(force=True)  # the workers are still up: a short drain gets a sample too
            finally:
                connections.close()
            left = wait_empty(dsn, namespace, 60.0)
            drained = time.time()
            hwm = sampler.hwm_kb()
            time.sleep(0.3)  # the last outcomes' flush
            results = count_rows(dsn, namespace, "results")
            dead = count_rows(dsn, namespace, "dead_letters")
            jobs_vacuums = vacuum_count(dsn, namespace, "jobs")
    log(f"{label}: {drain['jobs_per_s']:,.0f} jobs/s, {drain.get('cpu_total_us_per_job', 0):.0f} us CPU/job")
    return {
        "system": "stem_pg",
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "task": task,
        "queues": queues,
        "priorities": priorities,
        **drain,
        **connections.result(),
        "left_in_queue": left,
        "results_rows": results,
        "dead_letters": dead,
        "jobs_vacuums": jobs_vacuums,  # by the workers' maintenance pass and the emulated autovacuum
        "wall_seconds_incl_startup": drained - spawned,
        "enqueue_seconds": enqueue_seconds,
        "enqueue_jobs_per_s": jobs / enqueue_seconds,
        "max_rss_mb": sampler.max_kb / 1024,
        "hwm_rss_mb": hwm / 1024,
        "rss_timeline_mb": sampler.timeline,
        "analyzed_before_drain": analyze,
        "autovacuum_emulated": vacuums.active,
        "vacuums": vacuums.events,
    }


def enqueue(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    jobs: int = 100_000,
    batches: tuple[int, ...] = (5000, 10_000),
    threads: int = 8,
    seconds: float = 5.0,
    per_thread: int = 20_000,
) -> dict[str, Any]:
    """``enqueue_many`` of ``jobs`` jobs per batch size into an empty table, and single
    ``enqueue`` calls from ``threads`` threads sharing one app (its pool) for ``seconds``."""
    from stem_pg.client.app import EnqueueRequest

    result: dict[str, Any] = {"system": "stem_pg", "many": []}
    for batch in batches:
        reset(dsn, namespace)
        elapsed = enqueue_backlog(dsn, namespace, jobs, batch)
        result["many"].append({"batch": batch, "jobs": jobs, "jobs_per_s": jobs / elapsed})
        log(f"stem_pg enqueue_many batch={batch}: {jobs / elapsed:,.0f} jobs/s")
    # Building requests vs. the round trip: how much of enqueue_many is Python.
    app = make_app(dsn, namespace)
    try:
        request = EnqueueRequest("noop")
        start = time.perf_counter()
        specs = [app.plan(request) for _ in range(batches[0])]
        plan_s = time.perf_counter() - start
        result["plan_us_per_job"] = plan_s / len(specs) * 1e6
    finally:
        app.close()

    reset(dsn, namespace)
    app = make_app(dsn, namespace)
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def producer(i: int) -> None:
        for _ in range(10):  # warm up: the pool grows to one connection per thread
            app.enqueue("noop", {})
        barrier.wait()
        while counts[i] < per_thread and time.perf_counter() < stop_at[0]:
            app.enqueue("noop", {})
            counts[i] += 1

    workers = [threading.Thread(target=producer, args=(i,), daemon=True) for i in range(threads)]
    # Open the pool (and its first connection) before the threads start.
    app.enqueue("noop", {})
    try:
        for w in workers:
            w.start()
        stop_at[0] = time.perf_counter() + 3600
        time.sleep(0.5)
        start = time.perf_counter()
        stop_at[0] = start + seconds
        barrier.wait(timeout=60)
        for w in workers:
            w.join(timeout=seconds + 60)
        elapsed = time.perf_counter() - start
    finally:
        app.close()
    total = sum(counts)
    result.update(
        {
            "single_threads": threads,
            "single_jobs": total,
            "single_seconds": elapsed,
            "single_jobs_per_s": total / elapsed,
        }
    )
    best = max(m["jobs_per_s"] for m in result["many"])
    result["many_jobs_per_s"] = best
    log(f"stem_pg enqueue x{threads} threads: {total / elapsed:,.0f} jobs/s")
    return result


def latency(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    jobs: int = 1000,
    concurrency: int = 10,
    prefetch: int = BEST_PREFETCH,
    gap_ms: tuple[float, float] = (5.0, 20.0),
    warmup: int = 20,
    seed: int = 1,
) -> dict[str, Any]:
    """enqueue -> handler start on an idle, listening worker, one job at a time."""
    log(f"stem_pg latency: {jobs} jobs, gaps {gap_ms[0]}-{gap_ms[1]} ms")
    reset(dsn, namespace)
    rng = random.Random(seed)
    app = make_app(dsn, namespace)
    with Collector() as collector:
        proc = start_worker(
            dsn,
            namespace,
            processes=1,
            concurrency=concurrency,
            prefetch=prefetch,
            probe_path=collector.path,
            name="stem-latency",
        )
        try:
            with running([proc]):

                def one(timeout: float) -> tuple[float | None, float]:
                    t = time.time()
                    app.enqueue("lat", {"t": t})
                    call_ms = (time.time() - t) * 1000
                    return pgq.wait_sample(collector, t, timeout), call_ms

                deadline = time.monotonic() + 60
                while one(1.0)[0] is None:
                    proc.check_alive()
                    if time.monotonic() > deadline:
                        raise BenchError("stem_pg worker never ran a job")
                for _ in range(warmup):
                    time.sleep(rng.uniform(*gap_ms) / 1000)
                    one(2.0)
                samples: list[float] = []
                calls: list[float] = []
                misses = 0
                for _ in range(jobs):
                    time.sleep(rng.uniform(*gap_ms) / 1000)
                    got, call_ms = one(2.0)
                    calls.append(call_ms)
                    if got is None:
                        misses += 1
                    else:
                        samples.append(got)
        finally:
            app.close()
    result = {
        "system": "stem_pg",
        "concurrency": concurrency,
        **latency_summary(samples),
        "misses": misses,
        "enqueue_call_p50_ms": latency_summary(calls)["p50_ms"],
    }
    log(f"stem_pg latency: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
    return result


def rss(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    concurrency: int = 200,
    prefetch: int = BEST_PREFETCH,
    jobs: int = 50_000,
    sync_jobs: int = 20_000,
) -> list[dict[str, Any]]:
    """Worker RSS (one process) while it drains a backlog: async no-ops, then a blocking
    10 ms handler that keeps all ``concurrency`` slots (and thread-pool threads) busy."""
    rows = []
    for task, n in (("noop", jobs), ("sync_sleep", sync_jobs)):
        if n <= 0:
            continue
        log(f"stem_pg rss: concurrency {concurrency}, {n:,} x {task}")
        reset(dsn, namespace)
        enqueue_backlog(dsn, namespace, n, 5000, task)
        with Collector() as collector:
            proc = start_worker(
                dsn,
                namespace,
                processes=1,
                concurrency=concurrency,
                prefetch=prefetch,
                probe_path=collector.path,
                name="stem-rss",
            )
            sampler = RssSampler(proc)
            with running([proc]):
                started = time.monotonic()
                deadline = started + max(120.0, n / 500)

                while time.monotonic() < deadline:
                    sampler()
                    proc.check_alive()
                    time.sleep(0.2)
                    if count_rows(dsn, namespace, "jobs") == 0:
                        break
                left = count_rows(dsn, namespace, "jobs")
                elapsed = time.monotonic() - started
                sampler()
                hwm = sampler.hwm_kb()
        row = {
            "system": "stem_pg",
            "task": task,
            "jobs": n,
            "left_in_queue": left,
            "concurrency": concurrency,
            "prefetch": prefetch,
            "seconds": elapsed,
            "max_rss_mb": sampler.max_kb / 1024,
            "hwm_rss_mb": hwm / 1024,
            "max_threads": sampler.threads,
            "rss_timeline_mb": sampler.timeline,
        }
        log(f"stem_pg rss {task}: max VmRSS {row['max_rss_mb']:.1f} MB, VmHWM {row['hwm_rss_mb']:.1f} MB")
        rows.append(row)
    return rows


def sweep(
    *,
    dsn: str,
    namespace: str,
    jobs: int,
    processes: list[int],
    concurrency: list[int],
    prefetch: list[int],
) -> list[dict[str, Any]]:
    rows = []
    for p in processes:
        for c in concurrency:
            for m in prefetch:
                try:
                    rows.append(
                        throughput(
                            dsn=dsn, namespace=namespace, jobs=jobs, processes=p, concurrency=c, prefetch=m
                        )
                    )
                except BenchError as exc:
                    log(f"stem_pg P={p} C={c} M={m} failed: {exc}")
                    rows.append(
                        {
                            "system": "stem_pg",
                            "processes": p,
                            "concurrency": c,
                            "prefetch": m,
                            "error": str(exc),
                        }
                    )
    return rows


# -- tables --------------------------------------------------------------------------


def throughput_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        [
            "processes",
            "concurrency",
            "prefetch",
            "task",
            "jobs",
            "jobs/s",
            "CPU us/job (worker+PG)",
            "wall s",
            "max RSS MB",
            "note",
        ]
    )
    for r in rows:
        table.add(
            r.get("processes"),
            r.get("concurrency"),
            r.get("prefetch"),
            r.get("task"),
            r.get("jobs"),
            r.get("jobs_per_s"),
            cpu_cell(r),
            r.get("wall_seconds_incl_startup"),
            r.get("max_rss_mb"),
            r.get("error", "")[:60] if r.get("error") else _check(r),
        )
    return table


def cpu_cell(row: dict[str, Any]) -> str:
    if "cpu_total_us_per_job" not in row:
        return "-"
    return (
        f"{row['cpu_total_us_per_job']:.0f} ({row['cpu_worker_us_per_job']:.0f}"
        f"+{row['cpu_postgres_us_per_job']:.0f})"
    )


def _check(row: dict[str, Any]) -> str:
    problems = []
    if row.get("left_in_queue"):
        problems.append(f"{row['left_in_queue']} left in queue")
    if row.get("dead_letters"):
        problems.append(f"{row['dead_letters']} dead letters")
    if row.get("task") == "noop" and row.get("results_rows") not in (None, row.get("jobs")):
        problems.append(f"{row.get('results_rows')} results rows")
    return "; ".join(problems)


def print_celery(report: dict[str, Any]) -> None:
    """The Celery comparators' side-by-side table and the latency goal, when they ran."""
    side = cel.side_by_side(report)
    if side is not None:
        print()
        print(side.markdown())
    goal = cel.latency_goal(report)
    if goal and report.get("celery_latency"):
        print(goal)


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs: background load only ever slows a run down."""
    return max(runs, key=lambda r: r.get("jobs_per_s") or 0.0)


# -- CLI -----------------------------------------------------------------------------


CELERY_HELP = "also run Celery on these brokers (redis,amqp); skipped if not installed / reachable"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="stem_pg database (default: %(default)s)")
    parser.add_argument("--namespace", default="bench", help="stem_pg namespace, dropped on every run")
    parser.add_argument(
        "--pgq-dsn", default=DEFAULT_PGQ_DSN, help="pgqueuer's database, created if missing (%(default)s)"
    )
    parser.add_argument(
        "--no-autovacuum-emulation",
        action="store_true",
        help="when the server has autovacuum off, do not VACUUM as default autovacuum would",
    )
    parser.add_argument(
        "--signing",
        action="store_true",
        help="sign every job (HMAC-SHA256) and verify it in the workers (STEM_SIGNING_KEYS' cost)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="run the workers with --metrics-port PORT (the Prometheus metrics' cost)",
    )
    parser.add_argument(
        "--claim-unregistered",
        action="store_true",
        help="start the workers with --claim-unregistered (no task-name filter in the claim)",
    )
    parser.add_argument(
        "--claim-in-flush",
        action="store_true",
        help="start the workers with --claim-in-flush (the flush claims into the slots it frees)",
    )
    parser.add_argument(
        "--connections",
        choices=["minimal", "per-loop"],
        help="start the workers with --connections MODE (default: the worker's own default)",
    )
    parser.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        help="start the workers with --event-loop LOOP (default: the worker's own default)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def worker_options(p: argparse.ArgumentParser, concurrency: int = BEST_CONCURRENCY) -> None:
        p.add_argument("--processes", type=int, default=BEST_PROCESSES)
        p.add_argument("--concurrency", type=int, default=concurrency)
        p.add_argument("--prefetch", "--prefetch-multiplier", type=int, default=BEST_PREFETCH)

    tp = sub.add_parser("throughput", help="drain a backlog of no-op jobs")
    tp.add_argument("--jobs", type=int, default=100_000)
    tp.add_argument("--task", default="noop", choices=["noop", "noop_ignore", "burn"])
    tp.add_argument("--repeat", type=int, default=1)
    tp.add_argument("--pgqueuer", action="store_true", help="also run pgqueuer with the same processes")
    tp.add_argument("--pgq-batch-size", type=int, default=PGQ_BEST_BATCH)
    tp.add_argument("--pgq-driver", default=PGQ_BEST_DRIVER, choices=["apg", "apgpool", "psy"])
    tp.add_argument("--celery", metavar="BROKERS", help=CELERY_HELP)
    tp.add_argument("--celery-jobs", type=int, help="Celery's backlog (default: --jobs)")
    tp.add_argument("--queues", type=int, default=1, help="spread the backlog over N queues, all consumed")
    tp.add_argument("--priorities", type=int, default=1, help="and over N priorities (0 .. N-1)")
    worker_options(tp)

    en = sub.add_parser("enqueue", help="enqueue_many and 8-thread single enqueue rates")
    en.add_argument("--jobs", type=int, default=100_000)
    en.add_argument("--batch", type=int, nargs="+", default=[5000, 10_000])
    en.add_argument("--threads", type=int, default=8)
    en.add_argument("--seconds", type=float, default=5.0)
    en.add_argument("--pgqueuer", action="store_true")

    el = sub.add_parser(
        "enqueue-loop",
        add_help=False,
        help="one producer's back-to-back single enqueues and commits per call (bench/enqueue_loop.py)",
    )
    el.add_argument("options", nargs="*", help="python -m bench.enqueue_loop's options (see its --help)")

    lt = sub.add_parser("latency", help="enqueue -> handler start on an idle worker")
    lt.add_argument("--jobs", type=int, default=1000)
    lt.add_argument("--concurrency", type=int, default=10)
    lt.add_argument("--pgqueuer", action="store_true")
    lt.add_argument("--celery", metavar="BROKERS", help=CELERY_HELP)

    rs = sub.add_parser("rss", help="worker RSS while draining at a given concurrency")
    rs.add_argument("--concurrency", type=int, default=200)
    rs.add_argument("--jobs", type=int, default=50_000)
    rs.add_argument("--sync-jobs", type=int, default=20_000)

    bl = sub.add_parser("backlog", help="throughput with a big backlog vs 100k, same config")
    bl.add_argument("--jobs", type=int, default=1_000_000)
    bl.add_argument("--base-jobs", type=int, default=100_000)
    worker_options(bl)

    bu = sub.add_parser(
        "burst", help="a burst onto an idle worker's quiet queue (no ANALYZE) vs the steady-state drain"
    )
    bu.add_argument("--jobs", type=int, default=100_000)
    bu.add_argument("--repeat", type=int, default=1, help="interleaved runs of each (best kept)")
    own = "default: the worker's own, %(default)s"
    bu.add_argument("--processes", type=int, default=1, help=own)
    bu.add_argument("--concurrency", type=int, default=10, help=own)
    bu.add_argument("--prefetch", "--prefetch-multiplier", type=int, default=2, help=own)

    pl = sub.add_parser("payload", help="drain no-op jobs with large arguments (1 KB, 100 KB), vs pgqueuer")
    pl.add_argument("--size", type=int, nargs="+", default=[1000, 100_000], help="bytes of JSON per job")
    pl.add_argument("--jobs", type=int, default=10_000)
    pl.add_argument("--repeat", type=int, default=1, help="alternating runs per system and size (best kept)")
    pl.add_argument("--pgqueuer", action="store_true")
    pl.add_argument("--pgq-batch-size", type=int, default=PGQ_BEST_BATCH)
    pl.add_argument("--pgq-driver", default=PGQ_BEST_DRIVER, choices=["apg", "apgpool", "psy"])
    pl.add_argument(
        "--pgq-decode",
        choices=["yes", "no", "both"],
        default="yes",
        help="pgqueuer's handler json.loads its payload, as a real handler must (yes, the default),"
        " or drops the bytes undecoded (no: the comparison before 2026-12-02), or both, interleaved",
    )
    worker_options(pl)

    sw = sub.add_parser("sweep", help="throughput over processes x concurrency x prefetch")
    sw.add_argument("--jobs", type=int, default=100_000)
    sw.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    sw.add_argument("--concurrency", type=int, nargs="+", default=[50, 100, 200])
    sw.add_argument("--prefetch", type=int, nargs="+", default=[1, 2, 4])

    ce = sub.add_parser(
        "ceiling",
        help="the raw-SQL ceiling: pgbench drains jobs with the claim and finish SQL (bench/ceiling/)",
    )
    ce.add_argument("--jobs", type=int, default=100_000)
    ce.add_argument("--batch", type=int, nargs="+", default=[200, 800], help="jobs per pgbench claim")
    ce.add_argument("--clients", type=int, default=2, help="pgbench -c / -j")
    ce.add_argument(
        "--variant",
        nargs="+",
        default=["async", "durable", "split"],
        choices=["async", "durable", "split"],
        help="async: claim.sql, synchronous_commit=off (the ceiling); durable: the same, on;"
        " split: claim_split.sql (claim and finish commit apart, as the worker does), on",
    )
    ce.add_argument("--repeat", type=int, default=1, help="interleaved rounds (medians reported)")
    ce.add_argument("--no-stem", action="store_true", help="only the pgbench drains")
    ce.add_argument(
        "--ab-claim-in-flush",
        action="store_true",
        help="two stem_pg drains per round: with --claim-in-flush, then without (after/before)",
    )
    worker_options(ce)

    al = sub.add_parser(
        "all",
        help="every case of the issue, stem_pg against pgqueuer (and Celery), one table of ratios and"
        " targets (about 12 minutes at the defaults on 2 cores, 15 with --celery; bench/README.md)",
        description="Runs, in one go: the raw-SQL ceiling (pgbench, claim 200 and 800), the --jobs drain"
        " (stem_pg, pgqueuer, Celery with --celery; connections per worker process counted meanwhile),"
        " the same with ignore_result, spread over 10 queues x 10 priorities, the CPU-bound case"
        " (1 ms CPU, 2 processes x 2, vs pgqueuer and vs no-ops), enqueue_many and 8-thread enqueue,"
        " one producer's enqueue loop (commits per enqueue), latency, the big backlog, half of a"
        " backlog delayed (first, mixed), worker RSS at concurrency 200, 1 KB and 100 KB payloads."
        " Ends with one Markdown table: metric, stem_pg, comparator, ratio, target, met/missed."
        " Each heavy case's size option takes 0 to skip it.",
    )
    al.add_argument("--jobs", type=int, default=100_000, help="backlog of the throughput drains")
    al.add_argument(
        "--repeat", type=int, default=2, help="interleaved rounds of the drains and enqueue loops (best kept)"
    )
    al.add_argument("--latency-jobs", type=int, default=1000)
    al.add_argument("--backlog-jobs", type=int, default=1_000_000, help="the big backlog; 0 skips it")
    al.add_argument(
        "--delayed-jobs",
        type=int,
        default=1_000_000,
        help="backlog of which half is scheduled an hour ahead (bench/delayed.py); 0 skips it",
    )
    al.add_argument(
        "--burn-jobs",
        type=int,
        default=10_000,
        help="the CPU-bound case (1 ms CPU per job, 2 x 2); 0 skips it",
    )
    al.add_argument(
        "--queues-jobs",
        type=int,
        help="the drain over 10 queues x 10 priorities (default: --jobs, as the 1-queue drain); 0 skips it",
    )
    al.add_argument(
        "--loop-seconds",
        type=float,
        default=5.0,
        help="one producer's back-to-back single enqueues, per run (bench/enqueue_loop.py); 0 skips it",
    )
    al.add_argument(
        "--rss-jobs",
        type=int,
        default=50_000,
        help="the RSS drain's no-ops (2/5 as many 10 ms ones); 0 skips it",
    )
    al.add_argument("--pgq-batch-size", type=int, default=PGQ_BEST_BATCH)
    al.add_argument("--pgq-driver", default=PGQ_BEST_DRIVER, choices=["apg", "apgpool", "psy"])
    al.add_argument(
        "--payload-jobs",
        type=int,
        default=10_000,
        help="jobs of 100 KB, the issue's case (ten times as many of 1 KB); 0 skips them",
    )
    al.add_argument("--no-pgqueuer", action="store_true")
    al.add_argument("--celery", metavar="BROKERS", help=CELERY_HELP)
    al.add_argument("--celery-jobs", type=int, default=20_000, help="Celery's backlog (it drains slowly)")
    worker_options(al)
    from bench import results_scale

    results_scale.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["enqueue-loop"]:  # its own options (--dsn: a database of its own)
        from bench import enqueue_loop

        return enqueue_loop.main(argv[1:])
    args = _parser().parse_args(argv)
    install_signal_cleanup()
    if args.no_autovacuum_emulation:
        AUTOVACUUM["enabled"] = False
    if args.claim_unregistered:
        WORKER_FLAGS.append("--claim-unregistered")
    if args.claim_in_flush:
        WORKER_FLAGS.append("--claim-in-flush")
    if args.connections:
        WORKER_FLAGS.extend(["--connections", args.connections])
    if args.event_loop:
        WORKER_FLAGS.extend(["--event-loop", args.event_loop])
    if args.signing:
        os.environ[SIGNING_ENV] = "1"  # this process's apps and the workers it starts
    if args.metrics_port:
        WORKER_FLAGS.extend(["--metrics-port", str(args.metrics_port)])
    common = {"dsn": args.dsn, "namespace": args.namespace}
    try:
        if args.command == "throughput":
            rows = []
            for _ in range(args.repeat):
                rows.append(
                    throughput(
                        **common,
                        jobs=args.jobs,
                        processes=args.processes,
                        concurrency=args.concurrency,
                        prefetch=args.prefetch,
                        task=args.task,
                        queues=args.queues,
                        priorities=args.priorities,
                    )
                )
                if args.pgqueuer:
                    rows.append(
                        pgq.throughput(
                            dsn=args.pgq_dsn,
                            jobs=args.jobs,
                            processes=args.processes,
                            # pgqueuer wants max_concurrent_tasks >= 2 x its batch
                            batch_size=(
                                min(args.pgq_batch_size, max(1, args.concurrency // 2))
                                if args.task == "burn"
                                else args.pgq_batch_size
                            ),
                            driver=args.pgq_driver,
                            autovacuum=AUTOVACUUM,
                            # the CPU-bound case: the same task, as many at once per process
                            entrypoint="burn" if args.task == "burn" else "noop",
                            max_concurrent=args.concurrency if args.task == "burn" else None,
                        )
                    )
                celery = cel.run_optional(
                    "throughput",
                    parse_brokers(args.celery),
                    jobs=args.celery_jobs or args.jobs,
                    processes=args.processes,
                    task="burn" if args.task == "burn" else "noop",
                )
                rows.extend(celery.values())
            stem_rows = [r for r in rows if r["system"] == "stem_pg"]
            print(throughput_table(stem_rows).markdown())
            if args.pgqueuer:
                print()
                print(pgq.throughput_table([r for r in rows if r["system"] == "pgqueuer"]).markdown())
            celery_rows = [r for r in rows if "broker" in r]
            if celery_rows:
                print()
                print(cel.throughput_table(celery_rows).markdown())
                side = cel.side_by_side(
                    {
                        "throughput": best_run(stem_rows),
                        "pgq_throughput": best_run([r for r in rows if r["system"] == "pgqueuer"] or [{}]),
                        "celery_throughput": {r["broker"]: r for r in celery_rows},
                    }
                )
                if side is not None:
                    print()
                    print(side.markdown())
            write_json("throughput", {"results": rows})
        elif args.command == "enqueue":
            row = enqueue(**common, jobs=args.jobs, batches=tuple(args.batch), threads=args.threads)
            report: dict[str, Any] = {"enqueue": row}
            if args.pgqueuer:
                report["pgq_enqueue"] = pgq.enqueue(dsn=args.pgq_dsn, jobs=args.jobs, threads=args.threads)
            table = Table(["enqueue_many batch", "jobs/s"])
            for m in row["many"]:
                table.add(m["batch"], m["jobs_per_s"])
            print(table.markdown())
            print()
            print(summary(report).markdown())
            write_json("enqueue", report)
        elif args.command == "latency":
            report = {"latency": latency(**common, jobs=args.jobs, concurrency=args.concurrency)}
            if args.pgqueuer:
                report["pgq_latency"] = pgq.latency(dsn=args.pgq_dsn, jobs=args.jobs)
            brokers = parse_brokers(args.celery)
            report["celery_latency"] = cel.run_optional("latency", brokers, jobs=args.jobs)
            print(summary(report).markdown())
            print_celery(report)
            write_json("latency", report)
        elif args.command == "rss":
            rows = rss(**common, concurrency=args.concurrency, jobs=args.jobs, sync_jobs=args.sync_jobs)
            print(summary({"rss": rows}).markdown())
            write_json("rss", {"rss": rows})
        elif args.command == "backlog":
            opts = {"processes": args.processes, "concurrency": args.concurrency, "prefetch": args.prefetch}
            base = throughput(**common, jobs=args.base_jobs, **opts)
            big = throughput(**common, jobs=args.jobs, enqueue_batch=10_000, **opts)
            print(throughput_table([base, big]).markdown())
            print()
            print(summary({"throughput": base, "backlog_1m": big}).markdown())
            write_json("backlog", {"throughput": base, "backlog_1m": big})
        elif args.command == "burst":
            from bench import burst

            report = burst.burst(
                **common,
                jobs=args.jobs,
                processes=args.processes,
                concurrency=args.concurrency,
                prefetch=args.prefetch,
                repeat=args.repeat,
            )
            print(burst.burst_table(report).markdown())
            print(f"\nfull results: {write_json('burst', report)}")
        elif args.command == "payload":
            from bench import payload

            report = payload.payload(
                **common,
                pgq_dsn=args.pgq_dsn,
                sizes=tuple(args.size),
                jobs=args.jobs,
                processes=args.processes,
                concurrency=args.concurrency,
                prefetch=args.prefetch,
                pgqueuer=args.pgqueuer,
                pgq_batch_size=args.pgq_batch_size,
                pgq_driver=args.pgq_driver,
                pgq_decode=args.pgq_decode,
                repeat=args.repeat,
            )
            print(payload.runs_table(report).markdown())
            print()
            print(payload.table(report).markdown())
            print(f"\nfull results: {write_json('payload', report)}")
        elif args.command == "sweep":
            rows = sweep(
                **common,
                jobs=args.jobs,
                processes=args.processes,
                concurrency=args.concurrency,
                prefetch=args.prefetch,
            )
            print(throughput_table(rows).markdown())
            ok = [r for r in rows if "jobs_per_s" in r]
            if ok:
                best = max(ok, key=lambda r: r["jobs_per_s"])
                print(
                    f"\nbest: --processes {best['processes']} --concurrency {best['concurrency']}"
                    f" --prefetch-multiplier {best['prefetch']}: {best['jobs_per_s']:,.0f} jobs/s"
                )
            write_json("sweep", {"results": rows})
        elif args.command == "results-scale":
            from bench import results_scale

            return results_scale.main(args)
        elif args.command == "ceiling":
            from bench import ceiling

            dsn = ceiling.CEILING_DSN if args.dsn == DEFAULT_DSN else args.dsn
            stem_opts = {"processes": args.processes, "concurrency": args.concurrency}
            stem_opts["prefetch"] = args.prefetch
            report = ceiling.ceiling(
                dsn=dsn,
                namespace=args.namespace,
                jobs=args.jobs,
                batches=args.batch,
                clients=args.clients,
                variants=args.variant,
                repeat=args.repeat,
                stem=None if args.no_stem else stem_opts,
                stem_flags=(
                    {"claim-in-flush": ["--claim-in-flush"], "no-claim-in-flush": []}
                    if args.ab_claim_in_flush
                    else None
                ),
            )
            print(ceiling.ceiling_table(report).markdown())
            if "stem_runs" in report:
                print()
                print(ceiling.ratio_table(report).markdown())
            print(f"\nfull results: {write_json('ceiling', report)}")
        elif args.command == "all":
            from bench.run_all import run_all

            report = run_all(args)
            path = write_json("all", report)
            if "payload" in report:
                from bench import payload

                print(payload.table(report["payload"]).markdown())
            print_celery(report)
            print("\nstem_pg against its comparators, each case as a ratio with its target:\n")
            print(summary(report).markdown())
            for failed in report.get("errors", []):
                print(f"\nFAILED, not in the table: {failed['case']}: {failed['error'][-300:]}")
            print(f"\nfull results: {path} (took {report['elapsed_s']:.0f} s)")
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
