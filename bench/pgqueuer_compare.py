"""pgqueuer measured by the same harness as stem_pg: throughput, latency, enqueue.

pgqueuer lives in its own database (``bench_pgq`` by default, created on first
use) on the same Postgres server, installed with its own ``pgq install``
(durable: every table logged, like stem_pg's). Workers are ``bench.pgq_worker``
processes, i.e. ``pgq run`` (pgqueuer has no --processes flag: N processes are N
``pgq run``; see pgq_worker.py for why not the CLI itself), each with one
PgQueuer on the driver of ``--driver`` (asyncpg by default, as ``pgq`` itself
prefers) and ``--batch-size`` jobs per dequeue. ``pgq run`` uses uvloop when it
is installed (it is a pgqueuer dependency); stem_pg runs on plain asyncio.

Run on its own: ``python -m bench.pgqueuer_compare throughput --jobs 100000``
(``sweep``, ``latency``, ``enqueue`` too); ``python -m bench all`` runs it side
by side with stem_pg.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench.common import (
    DEFAULT_PGQ_DSN,
    PROBE_ENV,
    AutovacuumEmulation,
    BenchError,
    Collector,
    Proc,
    Table,
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

PGQ = [sys.executable, "-m", "pgqueuer"]
DEFAULT_BATCH = 100
DEFAULT_DRIVER = "apg"


def _pgq_cli_env(dsn: str) -> dict[str, str]:
    return {"PGDSN": dsn}


def reset(dsn: str) -> None:
    """``pgq uninstall`` (if installed) then ``pgq install``: empty tables, fresh statistics."""
    ensure_database(dsn)
    env = {**_env(), **_pgq_cli_env(dsn)}
    subprocess.run([*PGQ, "uninstall"], env=env, capture_output=True, timeout=120, check=False)
    done = subprocess.run([*PGQ, "install"], env=env, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"pgq install failed: {done.stdout.decode()[-1000:]} {done.stderr.decode()[-2000:]}")
    checkpoint(dsn)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def queue_count(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
        return int(row[0]) if row else -1


def analyze(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE pgqueuer")


async def _queries(dsn: str, driver: str = "apg") -> tuple[Any, Any]:
    """A pgqueuer Queries object and the connection to close afterwards."""
    from pgqueuer.queries import Queries

    if driver == "psy":
        from pgqueuer.db import PsycopgDriver

        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        return Queries(PsycopgDriver(conn)), conn
    import asyncpg
    from pgqueuer.db import AsyncpgDriver

    aconn = await asyncpg.connect(dsn=dsn)
    return Queries(AsyncpgDriver(aconn)), aconn


async def _close(conn: Any) -> None:
    await conn.close()


async def _enqueue_backlog(dsn: str, jobs: int, batch: int, entrypoint: str = "noop") -> float:
    """Insert ``jobs`` jobs with pgqueuer's batch enqueue; returns the seconds taken."""
    queries, conn = await _queries(dsn)
    try:
        start = time.perf_counter()
        for size in chunks(jobs, batch):
            await queries.enqueue([entrypoint] * size, [None] * size, [0] * size)
        return time.perf_counter() - start
    finally:
        await _close(conn)


def start_workers(
    dsn: str,
    processes: int,
    batch_size: int,
    driver: str,
    probe_path: str,
    name: str,
    max_concurrent: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> list[Proc]:
    env = {
        **(extra_env or {}),
        PROBE_ENV: probe_path,
        "BENCH_PGQ_DSN": dsn,
        "BENCH_PGQ_DRIVER": driver,
        **_pgq_cli_env(dsn),
    }
    argv = [sys.executable, "-m", "bench.pgq_worker", "--batch-size", str(batch_size)]
    if max_concurrent is not None:
        argv += ["--max-concurrent-tasks", str(max_concurrent)]
    return [spawn(f"{name}-{i}", argv, env) for i in range(processes)]


def throughput(
    *,
    dsn: str = DEFAULT_PGQ_DSN,
    jobs: int = 100_000,
    processes: int = 2,
    batch_size: int = DEFAULT_BATCH,
    driver: str = DEFAULT_DRIVER,
    enqueue_batch: int = 5000,
    timeout: float | None = None,
    autovacuum: dict[str, Any] | None = None,
    entrypoint: str = "noop",
    max_concurrent: int | None = None,
) -> dict[str, Any]:
    """Drain a backlog of ``jobs`` jobs of ``entrypoint`` (no-op unless ``burn``), with at most
    ``max_concurrent`` running per process (None: pgqueuer's default, no limit); rate from
    first to last handler start."""
    label = f"pgqueuer P={processes} batch={batch_size} driver={driver} task={entrypoint}"
    log(f"{label}: reset + enqueue {jobs:,}")
    reset(dsn)
    enqueue_seconds = asyncio.run(_enqueue_backlog(dsn, jobs, enqueue_batch, entrypoint))
    analyze(dsn)
    timeout = timeout or max(120.0, jobs / 500)
    rss_kb = 0
    with Collector() as collector:
        procs = start_workers(
            dsn, processes, batch_size, driver, collector.path, "pgq-throughput", max_concurrent
        )
        tables = ["pgqueuer", "pgqueuer_log"]
        with running(procs), AutovacuumEmulation(dsn, tables, **(autovacuum or {})) as vacuums:
            spawned = time.time()

            def sample() -> None:
                nonlocal rss_kb
                rss_kb = max(rss_kb, *(proc_status(p.pid).get("VmRSS", 0) for p in procs))

            drain = measure_drain(collector, procs, jobs, timeout, label, dsn, sample)
            left = _wait_empty(dsn, 60.0)
            drained = time.time()
    log(f"{label}: {drain['jobs_per_s']:,.0f} jobs/s, {drain.get('cpu_total_us_per_job', 0):.0f} us CPU/job")
    return {
        "system": "pgqueuer",
        "jobs": jobs,
        "processes": processes,
        "batch_size": batch_size,
        "driver": driver,
        **drain,
        "left_in_queue": left,
        "wall_seconds_incl_startup": drained - spawned,
        "enqueue_seconds": enqueue_seconds,
        "enqueue_jobs_per_s": jobs / enqueue_seconds,
        "max_rss_mb": rss_kb / 1024,
        "autovacuum_emulated": vacuums.active,
        "vacuums": vacuums.events,
    }


def _wait_empty(dsn: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    left = queue_count(dsn)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = queue_count(dsn)
    return left


def latency(
    *,
    dsn: str = DEFAULT_PGQ_DSN,
    jobs: int = 1000,
    batch_size: int = 10,
    driver: str = DEFAULT_DRIVER,
    gap_ms: tuple[float, float] = (5.0, 20.0),
    warmup: int = 20,
    seed: int = 1,
) -> dict[str, Any]:
    """enqueue -> handler start on an idle worker, one job at a time."""
    log(f"pgqueuer latency: {jobs} jobs, gaps {gap_ms[0]}-{gap_ms[1]} ms")
    reset(dsn)
    with Collector() as collector:
        procs = start_workers(dsn, 1, batch_size, driver, collector.path, "pgq-latency")
        with running(procs):
            result = asyncio.run(_latency_loop(dsn, collector, procs, jobs, gap_ms, warmup, seed))
    result.update({"system": "pgqueuer", "batch_size": batch_size, "driver": driver})
    log(f"pgqueuer latency: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
    return result


async def _latency_loop(
    dsn: str,
    collector: Collector,
    procs: list[Proc],
    jobs: int,
    gap_ms: tuple[float, float],
    warmup: int,
    seed: int,
) -> dict[str, Any]:
    queries, conn = await _queries(dsn)
    rng = random.Random(seed)
    try:

        async def one(timeout: float) -> tuple[float | None, float]:
            t = time.time()
            await queries.enqueue("lat", repr(t).encode())
            call_ms = (time.time() - t) * 1000
            return wait_sample(collector, t, timeout), call_ms

        await _wait_ready(one, procs)
        for _ in range(warmup):
            time.sleep(rng.uniform(*gap_ms) / 1000)
            await one(2.0)
        samples: list[float] = []
        calls: list[float] = []
        misses = 0
        for _ in range(jobs):
            time.sleep(rng.uniform(*gap_ms) / 1000)
            got, call_ms = await one(2.0)
            calls.append(call_ms)
            if got is None:
                misses += 1
            else:
                samples.append(got)
        return {
            **latency_summary(samples),
            "misses": misses,
            "enqueue_call_p50_ms": latency_summary(calls)["p50_ms"],
        }
    finally:
        await _close(conn)


async def _wait_ready(one: Any, procs: list[Proc], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            p.check_alive()
        got, _ = await one(1.0)
        if got is not None:
            return
    raise BenchError("pgqueuer worker never ran a job")


def wait_sample(collector: Collector, t: float, timeout: float) -> float | None:
    """The latency (ms) of the job enqueued at ``t``, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        fields = collector.recv(left)
        if fields and fields[0] == "L" and float(fields[1]) == t:
            return (float(fields[2]) - t) * 1000
    return None


def enqueue(
    *,
    dsn: str = DEFAULT_PGQ_DSN,
    jobs: int = 100_000,
    batch: int = 5000,
    threads: int = 8,
    seconds: float = 5.0,
    per_producer: int = 20_000,
) -> dict[str, Any]:
    """Batch enqueue (``jobs`` in batches of ``batch``) and single enqueue from ``threads``
    concurrent producers (asyncio tasks, one connection each: pgqueuer's API is async)."""
    log(f"pgqueuer enqueue: batch {batch}, {threads} single producers")
    reset(dsn)
    many_seconds = asyncio.run(_enqueue_backlog(dsn, jobs, batch))
    reset(dsn)
    single = asyncio.run(_single_producers(dsn, threads, seconds, per_producer))
    result = {
        "system": "pgqueuer",
        "many_jobs": jobs,
        "many_batch": batch,
        "many_jobs_per_s": jobs / many_seconds,
        "single_producers": threads,
        **single,
    }
    log(
        f"pgqueuer enqueue: batch {result['many_jobs_per_s']:,.0f}/s,"
        f" single x{threads} {result['single_jobs_per_s']:,.0f}/s"
    )
    return result


async def _single_producers(dsn: str, producers: int, seconds: float, per_producer: int) -> dict[str, Any]:
    pairs = [await _queries(dsn) for _ in range(producers)]
    try:
        for queries, _ in pairs:  # warm up each connection (statement cache)
            for _ in range(10):
                await queries.enqueue("noop", None)
        counts = [0] * producers
        start = time.perf_counter()
        deadline = start + seconds

        async def producer(i: int) -> None:
            queries = pairs[i][0]
            while counts[i] < per_producer and time.perf_counter() < deadline:
                await queries.enqueue("noop", None)
                counts[i] += 1

        await asyncio.gather(*(producer(i) for i in range(producers)))
        elapsed = time.perf_counter() - start
        return {
            "single_jobs": sum(counts),
            "single_seconds": elapsed,
            "single_jobs_per_s": sum(counts) / elapsed,
        }
    finally:
        for _, conn in pairs:
            await _close(conn)


def sweep(
    *,
    dsn: str = DEFAULT_PGQ_DSN,
    jobs: int = 100_000,
    processes: list[int],
    batch_sizes: list[int],
    drivers: list[str],
    autovacuum: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for p in processes:
        for driver in drivers:
            for b in batch_sizes:
                try:
                    rows.append(
                        throughput(
                            dsn=dsn,
                            jobs=jobs,
                            processes=p,
                            batch_size=b,
                            driver=driver,
                            autovacuum=autovacuum,
                        )
                    )
                except BenchError as exc:
                    log(f"pgqueuer P={p} batch={b} driver={driver} failed: {exc}")
                    rows.append(
                        {
                            "system": "pgqueuer",
                            "processes": p,
                            "batch_size": b,
                            "driver": driver,
                            "error": str(exc),
                        }
                    )
    return rows


def throughput_table(rows: list[dict[str, Any]]) -> Table:
    from bench.bench_stem import cpu_cell

    table = Table(
        ["processes", "batch", "driver", "jobs", "jobs/s", "CPU us/job (worker+PG)", "wall s", "max RSS MB"]
    )
    for r in rows:
        table.add(
            r.get("processes"),
            r.get("batch_size"),
            r.get("driver"),
            r.get("jobs"),
            r.get("jobs_per_s"),
            cpu_cell(r),
            r.get("wall_seconds_incl_startup"),
            r.get("max_rss_mb"),
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pgqueuer_compare", description=__doc__)
    parser.add_argument("--pgq-dsn", default=DEFAULT_PGQ_DSN)
    parser.add_argument("--no-autovacuum-emulation", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput", help="drain a backlog of no-op jobs")
    tp.add_argument("--jobs", type=int, default=100_000)
    tp.add_argument("--processes", type=int, default=2)
    tp.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    tp.add_argument("--driver", default=DEFAULT_DRIVER, choices=["apg", "apgpool", "psy"])
    sw = sub.add_parser("sweep", help="throughput over processes x batch sizes x drivers")
    sw.add_argument("--jobs", type=int, default=100_000)
    sw.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    sw.add_argument("--batch-size", type=int, nargs="+", default=[10, 50, 100, 200])
    sw.add_argument("--driver", nargs="+", default=[DEFAULT_DRIVER], choices=["apg", "apgpool", "psy"])
    lt = sub.add_parser("latency", help="enqueue -> handler start on an idle worker")
    lt.add_argument("--jobs", type=int, default=1000)
    lt.add_argument("--batch-size", type=int, default=10)
    lt.add_argument("--driver", default=DEFAULT_DRIVER, choices=["apg", "apgpool", "psy"])
    en = sub.add_parser("enqueue", help="batch and single enqueue rates")
    en.add_argument("--jobs", type=int, default=100_000)
    en.add_argument("--batch", type=int, default=5000)
    en.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    install_signal_cleanup()
    vacuum = {"enabled": not args.no_autovacuum_emulation}
    try:
        if args.command == "throughput":
            row = throughput(
                dsn=args.pgq_dsn,
                jobs=args.jobs,
                processes=args.processes,
                batch_size=args.batch_size,
                driver=args.driver,
                autovacuum=vacuum,
            )
            print(throughput_table([row]).markdown())
            write_json("pgq-throughput", {"results": [row]})
        elif args.command == "sweep":
            rows = sweep(
                dsn=args.pgq_dsn,
                jobs=args.jobs,
                processes=args.processes,
                batch_sizes=args.batch_size,
                drivers=args.driver,
                autovacuum=vacuum,
            )
            print(throughput_table(rows).markdown())
            write_json("pgq-sweep", {"results": rows})
        elif args.command == "latency":
            row = latency(dsn=args.pgq_dsn, jobs=args.jobs, batch_size=args.batch_size, driver=args.driver)
            table = Table(["n", "p50 ms", "p90 ms", "p99 ms", "max ms", "misses"])
            table.add(row["n"], row["p50_ms"], row["p90_ms"], row["p99_ms"], row["max_ms"], row["misses"])
            print(table.markdown())
            write_json("pgq-latency", {"results": [row]})
        elif args.command == "enqueue":
            row = enqueue(dsn=args.pgq_dsn, jobs=args.jobs, batch=args.batch, threads=args.threads)
            table = Table(["batch enqueue jobs/s", "single enqueue jobs/s"])
            table.add(row["many_jobs_per_s"], row["single_jobs_per_s"])
            print(table.markdown())
            write_json("pgq-enqueue", {"results": [row]})
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
