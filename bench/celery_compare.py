"""Celery on Redis and on RabbitMQ, timed like stem_pg and pgqueuer (optional comparators).

``python -m bench.celery_compare throughput --broker redis|amqp`` drains a backlog of
no-op (or ``--task burn``) tasks; ``latency`` times enqueue -> handler start on an idle
worker, one task at a time. The workers are ``celery -A bench.celery_app worker``
processes; handlers report through the same probe socket as the other systems. The
broker server's CPU (redis-server, or RabbitMQ's beam.smp, found through /proc) counts
as the "server" share of CPU per job, like the Postgres backends of the others. Those
servers are shared by the machine: anything else using them at the time is counted too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.celery_broker import (
    BROKERS,
    LABELS,
    QUEUE,
    ServerCpuMeter,
    queue_op,
    reset,
    server_pids,
    unavailable,
)
from bench.common import (
    PROBE_ENV,
    BenchError,
    Collector,
    Proc,
    Table,
    children,
    install_signal_cleanup,
    latency_summary,
    log,
    measure_drain,
    proc_status,
    ratio,
    running,
    spawn,
    stop_all,
    write_json,
)

POOLS = ["prefork", "threads", "solo", "gevent"]
#: The pool Celery runs no-ops and the latency probe with: the thread pool, Celery's fastest
#: here for both (RESULTS.md, "Celery on Redis and RabbitMQ"; prefork is Celery's default).
#: The CPU-bound ``burn`` runs on prefork, what Celery users pick for CPU work.
DEFAULT_POOL = "threads"
BURN_POOL = "prefork"
BURN_CONCURRENCY = 2
DEFAULT_PREFETCH = 4  # Celery's default multiplier


# -- workers ------------------------------------------------------------------------------


def default_concurrency(pool: str, task: str = "noop") -> int:
    """``burn``: 2 at a time per worker (stem_pg's CPU-bound setting). Otherwise Celery's own
    default for prefork (one child per CPU) and stem_pg's 200 for threads / gevent."""
    if pool == "solo":
        return 1
    if task == "burn":
        return BURN_CONCURRENCY
    return (os.cpu_count() or 1) if pool == "prefork" else 200


def start_workers(
    broker: str,
    processes: int,
    pool: str,
    concurrency: int,
    prefetch: int,
    probe_path: str,
    name: str,
    results: bool = False,
) -> list[Proc]:
    env = {PROBE_ENV: probe_path, "BENCH_CELERY_BROKER": BROKERS[broker]}
    if results:  # a result backend: Redis for both brokers (the common pairing)
        env["BENCH_CELERY_RESULTS"] = "redis://127.0.0.1:6379/10"
    procs = []
    for i in range(processes):
        argv = [
            sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker",
            "--pool", pool, "--concurrency", str(concurrency), "--prefetch-multiplier", str(prefetch),
            "-Q", QUEUE, "-n", f"{name}-{i}@%h", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        procs.append(spawn(f"{name}-{i}", argv, env))
    return procs


# -- throughput ---------------------------------------------------------------------------


def enqueue_backlog(app: Any, jobs: int, task: str, producers: int = 4) -> float:
    """``jobs`` send_task calls from ``producers`` threads, one producer connection each
    (one thread waits on every publish's round trip); returns the seconds taken."""
    from concurrent.futures import ThreadPoolExecutor

    args = [1.0] if task == "burn" else []

    def produce(n: int) -> None:
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task(task, args=args, producer=producer)

    shares = [jobs // producers + (i < jobs % producers) for i in range(producers)]
    start = time.perf_counter()
    with ThreadPoolExecutor(producers) as pool:
        list(pool.map(produce, shares))
    return time.perf_counter() - start


def throughput(
    *,
    broker: str,
    jobs: int = 20_000,
    processes: int = 2,
    pool: str | None = None,
    concurrency: int | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    task: str = "noop",
    results: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Drain a backlog of ``jobs`` tasks; rate from first to last handler start. ``pool``:
    threads for no-ops, prefork for ``burn`` unless given."""
    pool = pool or (BURN_POOL if task == "burn" else DEFAULT_POOL)
    concurrency = concurrency or default_concurrency(pool, task)
    label = f"{LABELS[broker]} P={processes} pool={pool} C={concurrency} M={prefetch} task={task}"
    log(f"{label}: purge + enqueue {jobs:,}")
    app = reset(broker)
    enqueue_seconds = enqueue_backlog(app, jobs, task)
    timeout = timeout or max(120.0, jobs / 200)
    rss_kb = sum_kb = 0
    servers = server_pids(broker) + (server_pids("redis") if results and broker != "redis" else [])
    with Collector() as collector:
        procs = start_workers(
            broker, processes, pool, concurrency, prefetch, collector.path, "celery", results
        )
        with running(procs):
            spawned = time.time()

            def sample() -> None:
                nonlocal rss_kb, sum_kb
                rss = [proc_status(pid).get("VmRSS", 0) for p in procs for pid in (p.pid, *children(p.pid))]
                rss_kb, sum_kb = max(rss_kb, *rss), max(sum_kb, sum(rss))

            meter = ServerCpuMeter(procs, servers)
            drain = measure_drain(collector, procs, jobs, timeout, label, "", sample, meter)
            left = _wait_empty(app, 30.0)
            drained = time.time()
    log(f"{label}: {drain['jobs_per_s']:,.0f} jobs/s, {drain.get('cpu_total_us_per_job', 0):.0f} us CPU/job")
    return {
        "system": LABELS[broker],
        "broker": broker,
        "jobs": jobs,
        "processes": processes,
        "pool": pool,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "task": task,
        "results": results,
        **drain,
        "server_pids": servers,
        "left_in_queue": left,
        "wall_seconds_incl_startup": drained - spawned,
        "enqueue_seconds": enqueue_seconds,
        "enqueue_jobs_per_s": jobs / enqueue_seconds,
        "max_rss_mb": rss_kb / 1024,
        "max_rss_sum_mb": sum_kb / 1024,
    }


def _wait_empty(app: Any, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    left = queue_op(app, purge=False)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = queue_op(app, purge=False)
    return left


def cpu_cell(row: dict[str, Any]) -> str:
    if "cpu_total_us_per_job" not in row:
        return "-"
    return (
        f"{row['cpu_total_us_per_job']:.0f} ({row['cpu_worker_us_per_job']:.0f}"
        f"+{row['cpu_server_us_per_job']:.0f})"
    )


def throughput_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        ["system", "P", "pool", "C", "task", "jobs", "jobs/s", "CPU us/job (worker+broker)", "max RSS MB"]
    )
    for r in rows:
        table.add(
            r.get("system"),
            r.get("processes"),
            r.get("pool"),
            r.get("concurrency"),
            r.get("task"),
            r.get("jobs"),
            r.get("jobs_per_s"),
            cpu_cell(r),
            r.get("max_rss_mb"),
        )
    return table


# -- latency ------------------------------------------------------------------------------


def latency(
    *,
    broker: str,
    jobs: int = 1000,
    pool: str = DEFAULT_POOL,
    concurrency: int | None = None,
    gap_ms: tuple[float, float] = (5.0, 20.0),
    warmup: int = 20,
    seed: int = 1,
) -> dict[str, Any]:
    """enqueue (send_task) -> handler start on an idle worker, one task at a time
    (``concurrency``: stem_pg's 10 for threads, CPUs for prefork)."""
    from bench.pgqueuer_compare import wait_sample

    concurrency = concurrency or (10 if pool in ("threads", "gevent") else default_concurrency(pool))
    label = f"{LABELS[broker]} latency"
    log(f"{label}: {jobs} jobs, gaps {gap_ms[0]}-{gap_ms[1]} ms, pool={pool} C={concurrency}")
    app = reset(broker)
    rng = random.Random(seed)
    with Collector() as collector:
        procs = start_workers(broker, 1, pool, concurrency, 1, collector.path, "celery-latency")
        with running(procs):

            def one(timeout: float) -> tuple[float | None, float]:
                t = time.time()
                app.send_task("lat", args=[t])
                call_ms = (time.time() - t) * 1000
                return wait_sample(collector, t, timeout), call_ms

            deadline = time.monotonic() + 60
            while one(1.0)[0] is None:
                procs[0].check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"{label}: the worker never ran a task")
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
    result = {
        "system": LABELS[broker],
        "broker": broker,
        "pool": pool,
        "concurrency": concurrency,
        **latency_summary(samples),
        "misses": misses,
        "enqueue_call_p50_ms": latency_summary(calls)["p50_ms"],
    }
    log(f"{label}: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
    return result


def latency_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(["system", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "misses", "send call p50 ms"])
    for r in rows:
        table.add(
            r["system"], r["n"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["misses"],
            r["enqueue_call_p50_ms"],
        )  # fmt: skip
    return table


# -- as comparators of python -m bench ----------------------------------------------------


def run_optional(kind: str, brokers: Sequence[str], **kwargs: Any) -> dict[str, dict[str, Any]]:
    """``throughput`` or ``latency`` for each broker that can run here; the others are
    skipped with one line. Keyed by broker."""
    out: dict[str, dict[str, Any]] = {}
    for broker in brokers:
        why = unavailable(broker)
        if why:
            log(why)
            continue
        try:
            out[broker] = (throughput if kind == "throughput" else latency)(broker=broker, **kwargs)
        except BenchError as exc:
            log(f"{LABELS[broker]} {kind} failed: {exc}")
    return out


def side_by_side(report: dict[str, Any]) -> Table | None:
    """stem_pg, pgqueuer and Celery in one table; ratios are stem_pg / the other."""
    celery_tp = report.get("celery_throughput") or {}
    celery_lt = report.get("celery_latency") or {}
    if not celery_tp and not celery_lt:
        return None
    brokers = [b for b in BROKERS if b in celery_tp or b in celery_lt]
    headers = ["metric", "stem_pg", "pgqueuer"] + [LABELS[b] for b in brokers]
    headers += [f"stem/{LABELS[b].split('/')[1]}" for b in brokers]
    table = Table(headers)

    def row(metric: str, mine: Any, pgq: Any, others: list[Any]) -> None:
        table.add(metric, mine, pgq, *others, *(ratio(mine, o) for o in others))

    tp, ptp = report.get("throughput"), report.get("pgq_throughput") or {}
    if celery_tp:
        get = [celery_tp.get(b, {}) for b in brokers]
        row("throughput, jobs/s", tp and tp.get("jobs_per_s"), ptp.get("jobs_per_s"),
            [g.get("jobs_per_s") for g in get])  # fmt: skip
        row("CPU per job (worker + server), us", tp and tp.get("cpu_total_us_per_job"),
            ptp.get("cpu_total_us_per_job"), [g.get("cpu_total_us_per_job") for g in get])  # fmt: skip
    lt, plt = report.get("latency") or {}, report.get("pgq_latency") or {}
    if celery_lt:
        get = [celery_lt.get(b, {}) for b in brokers]
        for key in ("p50_ms", "p99_ms"):
            metric = f"enqueue -> start latency {key[:3]}, ms"
            row(metric, lt.get(key), plt.get(key), [g.get(key) for g in get])
    return table


def latency_goal(report: dict[str, Any]) -> str | None:
    """Issue 20's goal: stem_pg has the lowest p50 and p99 of all the systems in the run."""
    lt = report.get("latency")
    others = [report.get("pgq_latency"), *(report.get("celery_latency") or {}).values()]
    others = [o for o in others if o]
    if not lt or not others:
        return None
    met = all(lt[k] < o[k] for o in others for k in ("p50_ms", "p99_ms"))
    names = ", ".join(o.get("system", "?") for o in others)
    return f"latency goal (lowest p50 and p99 of stem_pg, {names}): {'met' if met else 'MISSED'}"


# -- CLI ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_compare", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput", help="drain a backlog of no-op (or burn) tasks")
    tp.add_argument("--broker", required=True, choices=list(BROKERS))
    tp.add_argument("--jobs", type=int, default=20_000)
    tp.add_argument("--processes", type=int, default=2, help="celery worker processes")
    tp.add_argument("--pool", choices=POOLS, help="default: threads (noop), prefork (burn)")
    tp.add_argument("--concurrency", type=int, help="per worker (default: 200 threads, CPUs prefork, 2 burn)")
    tp.add_argument("--prefetch-multiplier", type=int, default=DEFAULT_PREFETCH)
    tp.add_argument("--task", default="noop", choices=["noop", "burn"])
    tp.add_argument("--results", action="store_true", help="store results (Redis backend, db 10)")
    lt = sub.add_parser("latency", help="enqueue -> handler start on an idle worker")
    lt.add_argument("--broker", required=True, choices=list(BROKERS))
    lt.add_argument("--jobs", type=int, default=1000)
    lt.add_argument("--pool", default=DEFAULT_POOL, choices=POOLS)
    lt.add_argument("--concurrency", type=int)
    args = parser.parse_args(argv)
    why = unavailable(args.broker)
    if why:
        print(why, file=sys.stderr)
        return 2
    if args.pool == "gevent" and importlib.util.find_spec("gevent") is None:
        print("--pool gevent: gevent is not installed", file=sys.stderr)
        return 2
    install_signal_cleanup()
    try:
        if args.command == "throughput":
            row = throughput(
                broker=args.broker,
                jobs=args.jobs,
                processes=args.processes,
                pool=args.pool,
                concurrency=args.concurrency,
                prefetch=args.prefetch_multiplier,
                task=args.task,
                results=args.results,
            )
            print(throughput_table([row]).markdown())
            write_json(f"celery-{args.broker}-throughput", {"results": [row]})
        else:
            row = latency(broker=args.broker, jobs=args.jobs, pool=args.pool, concurrency=args.concurrency)
            print(latency_table([row]).markdown())
            write_json(f"celery-{args.broker}-latency", {"results": [row]})
    except BenchError as exc:
        print(f"{LABELS[args.broker]} {args.command} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
