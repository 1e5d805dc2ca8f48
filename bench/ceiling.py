"""The raw-SQL ceiling: pgbench drains a stem_pg ``jobs`` table with the product's SQL.

``python -m bench ceiling`` fills a freshly migrated namespace with ``--jobs`` no-op jobs
(``enqueue_many``, as ``throughput`` does), then runs ``pgbench -n -M prepared -f
bench/ceiling/<script>.sql -c C -j C -t T`` until the table is empty. Each pgbench
transaction claims ``--batch`` jobs the way ``job_claim`` does and moves them to results
the way ``job_finish`` does (the scripts say exactly what they mirror). Variants:

* ``async``: ``claim.sql`` (claim and finish in one transaction) with
  ``synchronous_commit = off``: the ceiling the issue quotes;
* ``durable``: the same with ``synchronous_commit = on``;
* ``split``: ``claim_split.sql`` (the claim commits, then the finish commits: stem_pg's
  two commits per batch), durable, as stem_pg's worker does it.

Then, in the same run, ``throughput`` drains the same backlog with stem_pg's worker,
and stem_pg's rate is printed as a ratio of each ceiling. ``--repeat`` interleaves.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from bench.common import BenchError, Table, log, ratio

#: A database of its own (its backends' CPU and its tables are the run's alone): the
#: default unless ``--dsn`` names another.
CEILING_DSN = "postgresql://postgres@127.0.0.1:5432/bench_ceiling"

SCRIPTS = Path(__file__).resolve().parent / "ceiling"

#: variant -> (script, synchronous_commit)
VARIANTS: dict[str, tuple[str, str]] = {
    "async": ("claim.sql", "off"),
    "durable": ("claim.sql", "on"),
    "split": ("claim_split.sql", "on"),
}

#: The worker's registry in bench/stem_app.py: the claim's task filter, as the worker sends it.
TASKS = "{noop,noop_ignore,lat,sync_sleep}"


def pgbench_argv(
    dsn: str, script: Path, *, batch: int, clients: int, transactions: int, queue: str = "default"
) -> list[str]:
    exe = shutil.which("pgbench")
    if exe is None:
        raise BenchError("pgbench not found on PATH (it ships with the PostgreSQL client)")
    return [
        exe,
        "-n",  # no vacuum of pgbench's own tables
        "-M",
        "prepared",  # as psycopg's server-side prepared statements after a few runs
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-t",
        str(transactions),
        "-D",
        f"batch={batch}",
        "-D",
        f"queue={queue}",
        "-D",
        f"tasks={TASKS}",
        "-d",
        dsn,
    ]


def pgbench_env(namespace: str, synchronous_commit: str) -> dict[str, str]:
    """PGOPTIONS for every pgbench session: the namespace, the claim's plan setting
    (job_claim_planner) and the commit mode of the variant."""
    options = f"-c search_path={namespace} -c enable_sort=off -c synchronous_commit={synchronous_commit}"
    return {**os.environ, "PGOPTIONS": options}


def parse_pgbench(output: str) -> dict[str, float]:
    """The transactions processed and the tps (without connection time) pgbench printed."""
    done = re.search(r"number of transactions actually processed: (\d+)", output)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if done is None or tps is None:
        raise BenchError(f"pgbench printed no result:\n{output[-2000:]}")
    return {
        "transactions": int(done.group(1)),
        "tps": float(tps.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
    }


def drain(*, dsn: str, namespace: str, variant: str, jobs: int, batch: int, clients: int) -> dict[str, Any]:
    """Reset ``namespace``, fill it with ``jobs`` no-ops, drain it with pgbench."""
    from bench.bench_stem import count_rows, enqueue_backlog, reset

    script, synchronous_commit = VARIANTS[variant]
    label = f"ceiling {variant} batch={batch} clients={clients}"
    log(f"{label}: reset + enqueue {jobs:,}")
    reset(dsn, namespace)
    enqueue_backlog(dsn, namespace, jobs, 5000)
    # Each client claims full batches until the table runs dry (SKIP LOCKED: no overlap);
    # a few spare transactions per client find nothing and cost next to nothing.
    transactions = math.ceil(jobs / (batch * clients)) + 2
    argv = pgbench_argv(
        conninfo_dsn(dsn), SCRIPTS / script, batch=batch, clients=clients, transactions=transactions
    )
    load = os.getloadavg()[0]
    began = time.perf_counter()
    proc, backend_cpu, pgbench_cpu = run_pgbench(argv, pgbench_env(namespace, synchronous_commit), dsn)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise BenchError(f"pgbench failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    stats = parse_pgbench(proc.stdout)
    left = count_rows(dsn, namespace, "jobs")
    results = count_rows(dsn, namespace, "results")
    if left or results != jobs:
        raise BenchError(f"{label}: {left} jobs left, {results} results rows (expected {jobs})")
    # pgbench's elapsed time without connecting: transactions / tps.
    seconds = stats["transactions"] / stats["tps"]
    row = {
        "variant": variant,
        "script": f"bench/ceiling/{script}",
        "synchronous_commit": synchronous_commit,
        "batch": batch,
        "clients": clients,
        "jobs": jobs,
        "seconds": seconds,
        "wall_seconds_incl_connect": wall,
        "jobs_per_s": jobs / seconds,
        "load_avg_1m_before": load,
        "pgbench_stderr_tail": proc.stderr[-500:],
        # CPU of pgbench's Postgres backends (sampled every 20 ms until they exit: a little
        # is missed) and of pgbench itself, per job: compare with throughput's CPU per job.
        "cpu_postgres_us_per_job": backend_cpu / jobs * 1e6,
        "cpu_pgbench_us_per_job": pgbench_cpu / jobs * 1e6,
        "argv": argv[1:],
        **stats,
    }
    log(f"{label}: {row['jobs_per_s']:,.0f} jobs/s")
    return row


def run_pgbench(
    argv: list[str], env: dict[str, str], dsn: str
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run pgbench; also the CPU seconds of its backends (application_name pgbench, found
    and sampled every 20 ms while it runs) and of pgbench itself (its rusage)."""
    import resource

    import psycopg

    from bench.common import cpu_seconds

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    last: dict[int, float] = {}
    # Files, not pipes: nothing reads a pipe while pgbench runs, and a full one stops it.
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        psycopg.connect(dsn, autocommit=True) as conn,
        subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True) as popen,
    ):
        find = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name = 'pgbench'"
        )
        deadline = time.monotonic() + 600
        while popen.poll() is None and time.monotonic() < deadline:
            for (pid,) in conn.execute(find).fetchall():
                cpu = cpu_seconds(int(pid))
                if cpu > 0:
                    last[int(pid)] = cpu
            time.sleep(0.02)
        if popen.poll() is None:  # past the deadline: every wait of the harness is bounded
            popen.kill()
        popen.wait(timeout=60)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = subprocess.CompletedProcess(argv, popen.returncode, stdout, stderr)
    return done, sum(last.values()), own


def conninfo_dsn(dsn: str) -> str:
    """``dsn`` as libpq keywords, for pgbench's ``-d`` (it takes a connection string)."""
    parts = conninfo_to_dict(dsn)
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def ceiling(
    *,
    dsn: str,
    namespace: str,
    jobs: int,
    batches: list[int],
    clients: int,
    variants: list[str],
    repeat: int,
    stem: dict[str, Any] | None,
    stem_flags: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``repeat`` rounds, each: every variant x batch size, then (``stem``: throughput's
    keyword arguments) one stem_pg drain per entry of ``stem_flags`` (label -> extra
    ``stem worker run`` flags; default: one drain as configured). Medians per
    configuration, and the ratios of the first stem_pg configuration's median."""
    from bench import bench_stem

    stem_flags = stem_flags or {"stem_pg": []}
    rows: list[dict[str, Any]] = []
    stem_rows: list[dict[str, Any]] = []
    for _ in range(repeat):
        for variant in variants:
            for batch in batches:
                size = {"jobs": jobs, "batch": batch, "clients": clients}
                rows.append(drain(dsn=dsn, namespace=namespace, variant=variant, **size))
        if stem is None:
            continue
        for label, flags in stem_flags.items():
            saved = list(bench_stem.WORKER_FLAGS)
            bench_stem.WORKER_FLAGS.extend(flags)
            try:
                row = bench_stem.throughput(dsn=dsn, namespace=namespace, jobs=jobs, **stem)
            finally:
                bench_stem.WORKER_FLAGS[:] = saved
            stem_rows.append({**row, "label": label, "worker_flags": saved + flags})
    medians: dict[str, float] = {}
    for variant in variants:
        for batch in batches:
            rates = [r["jobs_per_s"] for r in rows if r["variant"] == variant and r["batch"] == batch]
            medians[f"{variant}/{batch}"] = statistics.median(rates)
    report: dict[str, Any] = {"ceiling_runs": rows, "ceiling_medians": medians}
    if stem_rows:
        labels = list(stem_flags)
        stem_medians = {}
        for label in labels:
            stem_medians[label] = statistics.median(r["jobs_per_s"] for r in stem_rows if r["label"] == label)
        stem_median = stem_medians[labels[0]]
        report["stem_runs"] = stem_rows
        report["stem_medians"] = stem_medians
        report["stem_median_jobs_per_s"] = stem_median
        report["stem_ratio"] = {key: ratio(stem_median, value) for key, value in medians.items()}
        report["stem_ratios_by_label"] = {
            label: {key: ratio(m, value) for key, value in medians.items()}
            for label, m in stem_medians.items()
        }
    return report


def ceiling_table(report: dict[str, Any]) -> Table:
    headers = ["drain", "batch", "runs, jobs/s", "median jobs/s", "stem_pg / this", "CPU us/job (PG+client)"]
    table = Table(headers)
    keys = sorted({(r["variant"], r["batch"]) for r in report["ceiling_runs"]}, key=lambda k: (k[0], k[1]))
    for variant, batch in keys:
        same = [r for r in report["ceiling_runs"] if r["variant"] == variant and r["batch"] == batch]
        runs = [r["jobs_per_s"] for r in same]
        key = f"{variant}/{batch}"
        table.add(
            f"pgbench {VARIANTS[variant][0]}, synchronous_commit={VARIANTS[variant][1]}",
            batch,
            " / ".join(f"{x:,.0f}" for x in runs),
            report["ceiling_medians"][key],
            report.get("stem_ratio", {}).get(key),
            _cpu(same, "cpu_postgres_us_per_job", "cpu_pgbench_us_per_job"),
        )
    for label, median in report.get("stem_medians", {}).items():
        runs = [r for r in report["stem_runs"] if r["label"] == label]
        first = runs[0]
        flags = " ".join(first["worker_flags"])
        table.add(
            f"{label}: worker P={first['processes']} C={first['concurrency']} M={first['prefetch']} {flags}",
            "-",
            " / ".join(f"{r['jobs_per_s']:,.0f}" for r in runs),
            median,
            ratio(median, report["stem_median_jobs_per_s"]),
            _cpu(runs, "cpu_postgres_us_per_job", "cpu_worker_us_per_job"),
        )
    return table


def _cpu(runs: list[dict[str, Any]], postgres: str, client: str) -> str:
    """The median CPU per job, "total (Postgres + client)"."""
    if not all(postgres in r and client in r for r in runs):
        return "-"
    pg = statistics.median(r[postgres] for r in runs)
    other = statistics.median(r[client] for r in runs)
    return f"{pg + other:.0f} ({pg:.0f}+{other:.0f})"


def ratio_table(report: dict[str, Any]) -> Table:
    """Each stem_pg configuration's median as a ratio of each ceiling's median."""
    keys = list(report["ceiling_medians"])
    table = Table(["stem_pg", *[f"/ {k}" for k in keys]])
    for label, ratios in report.get("stem_ratios_by_label", {}).items():
        table.add(label, *[ratios[k] for k in keys])
    return table
