"""``python -m bench all``: every case of the issue in one run; bench/summary.py prints the table.

Rounds of the 100k drains (``--repeat``) interleave the systems so that they share the
machine's background load, and keep the fastest run of each (load only slows a run down).
Each heavy case has a size option whose 0 skips it (bench/README.md lists them).
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from typing import Any

from bench import bench_stem as stem
from bench import celery_compare as cel
from bench import pgqueuer_compare as pgq
from bench.ceiling import drain as ceiling_drain
from bench.celery_broker import parse_brokers
from bench.common import BenchError, log, stop_all

#: The CPU-bound case's worker options (the issue's "2 processes x concurrency 2").
BURN = {"processes": 2, "concurrency": 2, "prefetch": 2}
#: The spread drain: this many queues, each with jobs at this many priorities.
SPREAD = {"queues": 10, "priorities": 10}
#: The delayed case: the share of the backlog scheduled an hour ahead.
DELAYED_SHARE = 0.5
#: The raw-SQL ceiling's pgbench claim sizes (the best of them is the ceiling).
CEILING_BATCHES = (200, 800)


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return stem.best_run(runs)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    report: dict[str, Any] = {"config": dict(vars(args))}
    common = {"dsn": args.dsn, "namespace": args.namespace}
    worker = {"processes": args.processes, "concurrency": args.concurrency, "prefetch": args.prefetch}
    brokers = parse_brokers(args.celery)
    queues_jobs = args.jobs if args.queues_jobs is None else args.queues_jobs
    processes = args.processes
    pgq_opts = {
        "dsn": args.pgq_dsn,
        "batch_size": args.pgq_batch_size,
        "driver": args.pgq_driver,
        "autovacuum": stem.AUTOVACUUM,
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    celery_runs: dict[str, list[dict[str, Any]]] = {}

    def run(key: str, fn: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        got = _guarded(report, key, fn, **kwargs)
        if got is not None:
            runs.setdefault(key, []).append(got)

    def section(key: str, fn: Callable[..., Any], **kwargs: Any) -> None:
        got = _guarded(report, key, fn, **kwargs)
        if got is not None:
            report[key] = got

    for _ in range(args.repeat):  # interleaved, so all see the same background load
        if shutil.which("pgbench"):  # the raw-SQL ceiling (bench/ceiling.py)
            for batch in CEILING_BATCHES:
                run(
                    "ceiling",
                    ceiling_drain,
                    **common,
                    variant="async",
                    jobs=args.jobs,
                    batch=batch,
                    clients=processes,
                )
        else:
            log("pgbench not on the PATH: the raw-SQL ceiling is skipped")
        run("throughput", stem.throughput, **common, jobs=args.jobs, **worker)
        if not args.no_pgqueuer:
            run("pgq_throughput", pgq.throughput, jobs=args.jobs, processes=processes, **pgq_opts)
        run(
            "throughput_ignore_result",
            stem.throughput,
            **common,
            **worker,
            jobs=args.jobs,
            task="noop_ignore",
        )
        if queues_jobs > 0:
            run("queues_spread", stem.throughput, **common, **worker, jobs=queues_jobs, **SPREAD)
        for broker, row in cel.run_optional(
            "throughput", brokers, jobs=args.celery_jobs, processes=args.processes
        ).items():
            celery_runs.setdefault(broker, []).append(row)
    if args.burn_jobs > 0:
        _burn(args, run)
    if args.loop_seconds > 0:
        _enqueue_loop(args, run)
    for key, key_runs in runs.items():
        report[f"{key}_runs"] = key_runs
        report[key] = best_of(key_runs)
    if celery_runs:
        report["celery_throughput_runs"] = celery_runs
        report["celery_throughput"] = {b: best_of(r) for b, r in celery_runs.items()}

    section("enqueue", stem.enqueue, **common)
    if not args.no_pgqueuer:
        section("pgq_enqueue", pgq.enqueue, dsn=args.pgq_dsn)
    section("latency", stem.latency, **common, jobs=args.latency_jobs)
    if not args.no_pgqueuer:
        section("pgq_latency", pgq.latency, dsn=args.pgq_dsn, jobs=args.latency_jobs, driver=args.pgq_driver)
    if brokers:
        report["celery_latency"] = cel.run_optional("latency", brokers, jobs=args.latency_jobs)
    if args.backlog_jobs > 0:
        section(
            "backlog_1m", stem.throughput, **common, **worker, jobs=args.backlog_jobs, enqueue_batch=10_000
        )
    if args.delayed_jobs > 0:
        section("delayed", _delayed, args=args, worker=worker)
    if args.rss_jobs > 0:
        sync_jobs = args.rss_jobs * 2 // 5
        section("rss", stem.rss, **common, concurrency=200, jobs=args.rss_jobs, sync_jobs=sync_jobs)
    if args.payload_jobs > 0:  # 1 KB and 100 KB arguments, both systems
        section(
            "payload",
            _payloads,
            **common,
            pgq_dsn=args.pgq_dsn,
            jobs=args.payload_jobs,
            **worker,
            pgqueuer=not args.no_pgqueuer,
            pgq_batch_size=args.pgq_batch_size,
            pgq_driver=args.pgq_driver,
        )
    report["elapsed_s"] = time.monotonic() - started
    return report


#: The 1 KB case drains this many times ``--payload-jobs``: 2,000 jobs of 1 KB drain in a
#: fifth of a second, too short to read (bench/RESULTS.md, "`bench all` after this stop's merges").
#: The 100 KB case drains 10,000 (the default), as issue 20 states it: 2,000 drained in under a
#: second, mostly the first claims' ramp-up, and swung from 0.43x to 0.91x pgqueuer between runs.
SMALL_PAYLOAD_JOBS_FACTOR = 10


def _payloads(*, jobs: int, **options: Any) -> dict[str, Any]:
    """``payload`` at 1 KB and at 100 KB, the small size with ten times the jobs."""
    from bench import payload

    small, large = payload.SIZES
    rows: list[dict[str, Any]] = []
    for size, count in ((small, jobs * SMALL_PAYLOAD_JOBS_FACTOR), (large, jobs)):
        rows += payload.payload(sizes=(size,), jobs=count, **options)["results"]
    return {"results": rows}


def _guarded(report: dict[str, Any], key: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``fn(**kwargs)``; a case that fails (a timeout, a worker that died) is logged and
    listed under ``errors``, and the run goes on to the next case (None)."""
    try:
        return fn(**kwargs)
    except BenchError as exc:
        log(f"{key} failed, going on: {exc}")
        report.setdefault("errors", []).append({"case": key, "error": str(exc)[-2000:]})
        stop_all()  # whatever it left running
        return None


def _burn(args: argparse.Namespace, run: Callable[..., None]) -> None:
    """The CPU-bound case (``--task burn``, 2 processes x 2) against pgqueuer capped the same
    way, and no-ops at the same worker options: the server CPU per job a burning handler adds."""
    common = {"dsn": args.dsn, "namespace": args.namespace, "jobs": args.burn_jobs, **BURN}
    for _ in range(args.repeat):
        run("burn", stem.throughput, **common, task="burn")
        run("burn_noop", stem.throughput, **common)
        if not args.no_pgqueuer:
            # pgqueuer wants max_concurrent_tasks >= 2 x its batch size (as `throughput --task burn`)
            batch = min(args.pgq_batch_size, max(1, BURN["concurrency"] // 2))
            run(
                "pgq_burn",
                pgq.throughput,
                dsn=args.pgq_dsn,
                jobs=args.burn_jobs,
                processes=BURN["processes"],
                batch_size=batch,
                driver=args.pgq_driver,
                autovacuum=stem.AUTOVACUUM,
                entrypoint="burn",
                max_concurrent=BURN["concurrency"],
            )


def _enqueue_loop(args: argparse.Namespace, run: Callable[..., None]) -> None:
    """One producer's back-to-back single enqueues (bench/enqueue_loop.py), in the benchmark
    databases: commits per call counts every commit in them, so nothing else may be connected."""
    from bench import enqueue_loop

    def net_loop(**kwargs: Any) -> dict[str, Any]:
        """stem_loop, and its commits per call less those of opening and closing the app
        (a run of no calls, measured just before): what one enqueue commits."""
        opening = enqueue_loop.stem_loop(args.dsn, args.namespace, 0.0)["commits"]
        row = enqueue_loop.stem_loop(**kwargs)
        row["opening_commits"] = opening
        row["commits_per_call_net"] = (row["commits"] - opening) / row["calls"] if row["calls"] else None
        return row

    for _ in range(args.repeat):
        run("enqueue_loop", net_loop, dsn=args.dsn, namespace=args.namespace, seconds=args.loop_seconds)
        if not args.no_pgqueuer:
            run("pgq_enqueue_loop", enqueue_loop.pgq_loop, dsn=args.pgq_dsn, seconds=args.loop_seconds)


def _delayed(args: argparse.Namespace, worker: dict[str, int]) -> list[dict[str, Any]]:
    """Half of a ``--delayed-jobs`` backlog scheduled an hour ahead, enqueued first and mixed
    (bench/delayed.py): the due half's rate against the steady rate (the same due jobs alone)."""
    from bench import delayed

    late = int(args.delayed_jobs * DELAYED_SHARE)
    due = args.delayed_jobs - late
    rows = [delayed.drain(args.dsn, args.namespace, due=due, delayed=0, order="none", **worker)]
    for order in ("first", "mixed"):
        row = delayed.drain(args.dsn, args.namespace, due=due, delayed=late, order=order, **worker)
        row["vs_steady"] = row["jobs_per_s"] / rows[0]["jobs_per_s"]
        rows.append(row)
    return rows
