"""Large payloads: drain a backlog of no-op jobs whose arguments are ``size`` bytes of JSON.

``python -m bench payload [--size 1000 100000] [--jobs 10000] [--pgqueuer] [--repeat N]``

Each job carries ``{"blob": <size characters>}``: pseudo-random letters and digits, so
TOAST's compression gains little (the worst case for storage and transfer; a payload
of repeated text would be compressed by Postgres and cost far less). The stem_pg task
(``payload`` in bench/stem_app.py) takes ``blob`` as its argument, so the worker
decodes every job's arguments, as any application's would; the pgqueuer entrypoint
(bench/pgq_app.py) gets the same JSON as its ``bytes`` payload and decodes it with
``json.loads``, as a real handler must to use it (``--pgq-decode yes``, the default since
2026-12-02); ``--pgq-decode no`` drops the bytes undecoded (the comparison before, which
left pgqueuer's side without the decoding stem_pg's worker does), ``both`` runs each.

Reported per system and size: jobs/s, CPU per job (worker + its Postgres backends),
the largest worker RSS sampled during the drain (and stem_pg's VmHWM). With
``--pgqueuer`` the two systems alternate, size by size, so both see the same load.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from typing import Any

from bench import bench_stem as stem
from bench import pgqueuer_compare as pgq
from bench.common import (
    DEFAULT_DSN,
    DEFAULT_PGQ_DSN,
    AutovacuumEmulation,
    Collector,
    Table,
    log,
    measure_drain,
    proc_status,
    ratio,
    running,
)

SIZES = (1000, 100_000)
TASK = "payload"
#: Jobs per enqueue statement: about 10 MB at 100 KB, a few hundred jobs at 1 KB.
ENQUEUE_BYTES = 10_000_000


def blob(size: int, seed: int = 1) -> str:
    """``size`` pseudo-random letters and digits (TOAST cannot compress them much)."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=size))


def batch_for(size: int) -> int:
    return max(1, min(5000, ENQUEUE_BYTES // max(size, 1)))


def enqueue_stem(dsn: str, namespace: str, jobs: int, size: int) -> float:
    from bench.common import chunks
    from stem_pg.client.app import EnqueueRequest

    app = stem.make_app(dsn, namespace)
    try:
        request = EnqueueRequest(TASK, kwargs={"blob": blob(size)})
        start = time.perf_counter()
        for n in chunks(jobs, batch_for(size)):
            app.enqueue_many([request] * n)
        return time.perf_counter() - start
    finally:
        app.close()


async def _enqueue_pgq(dsn: str, jobs: int, size: int) -> float:
    from bench.common import chunks

    queries, conn = await pgq._queries(dsn)
    payload = json.dumps({"blob": blob(size)}).encode()
    try:
        start = time.perf_counter()
        for n in chunks(jobs, batch_for(size)):
            await queries.enqueue([TASK] * n, [payload] * n, [0] * n)
        return time.perf_counter() - start
    finally:
        await pgq._close(conn)


def run_stem(
    *, dsn: str, namespace: str, jobs: int, size: int, processes: int, concurrency: int, prefetch: int
) -> dict[str, Any]:
    label = f"stem_pg payload {size:,} B P={processes} C={concurrency} M={prefetch}"
    log(f"{label}: reset + enqueue {jobs:,}")
    stem.reset(dsn, namespace)
    enqueue_seconds = enqueue_stem(dsn, namespace, jobs, size)
    with Collector() as collector:
        proc = stem.start_worker(
            dsn,
            namespace,
            processes=processes,
            concurrency=concurrency,
            prefetch=prefetch,
            probe_path=collector.path,
            name="stem-payload",
        )
        sampler = stem.RssSampler(proc)
        tables = [f'"{namespace}".jobs', f'"{namespace}".results']
        with running([proc]), AutovacuumEmulation(dsn, tables, **stem.AUTOVACUUM):
            drain = measure_drain(collector, [proc], jobs, max(120.0, jobs / 100), label, dsn, sampler)
            left = stem.wait_empty(dsn, namespace, 60.0, sampler)
            sampler()
            hwm = sampler.hwm_kb()
    row = {
        "system": "stem_pg",
        "size": size,
        "jobs": jobs,
        "processes": processes,
        "concurrency": concurrency,
        "prefetch": prefetch,
        **drain,
        "left_in_queue": left,
        "enqueue_seconds": enqueue_seconds,
        "max_rss_mb": sampler.max_kb / 1024,
        "hwm_rss_mb": hwm / 1024,
        "rss_timeline_mb": sampler.timeline,
    }
    log(f"{label}: {row['jobs_per_s']:,.0f} jobs/s, max RSS {row['max_rss_mb']:.0f} MB")
    return row


def run_pgq(
    *, dsn: str, jobs: int, size: int, processes: int, batch_size: int, driver: str, decode: bool
) -> dict[str, Any]:
    label = f"pgqueuer payload {size:,} B P={processes} batch={batch_size}"
    log(f"{label}: reset + enqueue {jobs:,}")
    pgq.reset(dsn)
    enqueue_seconds = asyncio.run(_enqueue_pgq(dsn, jobs, size))
    pgq.analyze(dsn)
    rss_kb = 0
    with Collector() as collector:
        env_decode = {"BENCH_PGQ_DECODE": "1"} if decode else {}
        procs = pgq.start_workers(
            dsn, processes, batch_size, driver, collector.path, "pgq-payload", extra_env=env_decode
        )
        with running(procs), AutovacuumEmulation(dsn, ["pgqueuer", "pgqueuer_log"], **stem.AUTOVACUUM):

            def sample() -> None:
                nonlocal rss_kb
                rss_kb = max(rss_kb, *(proc_status(p.pid).get("VmRSS", 0) for p in procs))

            drain = measure_drain(collector, procs, jobs, max(120.0, jobs / 100), label, dsn, sample)
            left = pgq._wait_empty(dsn, 60.0)
            sample()
    row = {
        "system": "pgqueuer",
        "size": size,
        "jobs": jobs,
        "processes": processes,
        "batch_size": batch_size,
        "driver": driver,
        "decode": decode,
        **drain,
        "left_in_queue": left,
        "enqueue_seconds": enqueue_seconds,
        "max_rss_mb": rss_kb / 1024,
    }
    log(f"{label}: {row['jobs_per_s']:,.0f} jobs/s, max RSS {row['max_rss_mb']:.0f} MB")
    return row


def payload(
    *,
    dsn: str = DEFAULT_DSN,
    namespace: str = "bench",
    pgq_dsn: str = DEFAULT_PGQ_DSN,
    sizes: tuple[int, ...] = SIZES,
    jobs: int = 10_000,
    processes: int = stem.BEST_PROCESSES,
    concurrency: int = stem.BEST_CONCURRENCY,
    prefetch: int = stem.BEST_PREFETCH,
    pgqueuer: bool = False,
    pgq_batch_size: int = stem.PGQ_BEST_BATCH,
    pgq_driver: str = stem.PGQ_BEST_DRIVER,
    pgq_decode: str = "yes",
    repeat: int = 1,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for size in sizes:
        for _ in range(repeat):  # alternating: both systems see the same background load
            rows.append(
                run_stem(
                    dsn=dsn,
                    namespace=namespace,
                    jobs=jobs,
                    size=size,
                    processes=processes,
                    concurrency=concurrency,
                    prefetch=prefetch,
                )
            )
            for decode in (True, False) if pgqueuer else ():
                if pgq_decode == ("no" if decode else "yes"):
                    continue
                rows.append(
                    run_pgq(
                        dsn=pgq_dsn,
                        jobs=jobs,
                        size=size,
                        processes=processes,
                        batch_size=pgq_batch_size,
                        driver=pgq_driver,
                        decode=decode,
                    )
                )
    return {"results": rows}


def best(
    rows: list[dict[str, Any]], system: str, size: int, decode: bool | None = None
) -> dict[str, Any] | None:
    mine = [
        r
        for r in rows
        if r["system"] == system
        and r["size"] == size
        and "jobs_per_s" in r
        and (decode is None or r.get("decode") == decode)
    ]
    return max(mine, key=lambda r: r["jobs_per_s"]) if mine else None


def table(report: dict[str, Any]) -> Table:
    """One line per size and pgqueuer handler (decoding, or not): stem_pg and pgqueuer side by
    side (the fastest run of each), ratios."""
    rows = report["results"]
    t = Table(
        [
            "payload B",
            "pgq decodes",
            "jobs",
            "stem jobs/s",
            "pgq jobs/s",
            "ratio",
            "stem CPU us/job",
            "pgq CPU us/job",
            "ratio",
            "stem max RSS MB",
            "pgq max RSS MB",
            "load 1m",
        ]
    )
    decodes = sorted({bool(r.get("decode")) for r in rows if r["system"] == "pgqueuer"}, reverse=True)
    for size in sorted({r["size"] for r in rows}):
        for decode in decodes or [None]:
            _line(t, best(rows, "stem_pg", size), best(rows, "pgqueuer", size, decode), decode)
    return t


def _line(t: Table, s: dict[str, Any] | None, p: dict[str, Any] | None, decode: bool | None) -> None:
    if s is None:
        return
    s_cpu, p_cpu = s.get("cpu_total_us_per_job"), p and p.get("cpu_total_us_per_job")
    t.add(
        s["size"],
        {True: "json.loads", False: "no", None: "-"}[decode],
        s["jobs"],
        s["jobs_per_s"],
        p and p["jobs_per_s"],
        ratio(s["jobs_per_s"], p and p["jobs_per_s"]),
        s_cpu,
        p_cpu,
        ratio(s_cpu, p_cpu),
        s["max_rss_mb"],
        p and p["max_rss_mb"],
        s.get("load_avg_1m"),
    )


def runs_table(report: dict[str, Any]) -> Table:
    """Every run in the order it ran (``--repeat`` interleaves them): rate, CPU split, RSS, enqueue."""
    t = Table(
        [
            "system",
            "payload B",
            "jobs/s",
            "CPU us/job (worker+PG)",
            "max RSS MB",
            "enqueue s",
            "load 1m",
        ]
    )
    for r in report["results"]:
        if "jobs_per_s" not in r:
            continue
        system = r["system"] + {True: " (json.loads)", False: " (no decode)"}.get(r.get("decode"), "")
        split = f"{r.get('cpu_worker_us_per_job', 0):,.0f}+{r.get('cpu_postgres_us_per_job', 0):,.0f}"
        cpu = f"{r.get('cpu_total_us_per_job', 0):,.0f} ({split})"
        t.add(
            system,
            r["size"],
            r["jobs_per_s"],
            cpu,
            r["max_rss_mb"],
            r["enqueue_seconds"],
            r.get("load_avg_1m"),
        )
    return t
