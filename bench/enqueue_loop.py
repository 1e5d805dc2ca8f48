"""One producer calling single enqueue back to back: jobs/s and commits per call.

stem_pg: ``app.enqueue("noop", {})`` in a loop on one thread (one app, its pool).
pgqueuer: ``await queries.enqueue("noop", None)`` in a loop on one asyncpg
connection. Each system writes to a database of its own (``--dsn``,
``--pgq-dsn``, created on first use): commits per call is the database's
``xact_commit`` (pg_stat_database) over the run, read once every connection the
run opened is gone (a backend reports its counters when it exits), divided by
the calls made. It includes the handful of commits that opening the pool costs.
Producer CPU per call: the producer process's user + system CPU over its loop.
``--repeat N`` interleaves N runs of each system.

    python -m bench.enqueue_loop --seconds 5 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from typing import Any

import psycopg

from bench import common
from bench import pgqueuer_compare as pgq
from bench.bench_stem import make_app, reset
from bench.common import ADMIN_DSN, BenchError, Table, install_signal_cleanup, log, ratio, write_json

DEFAULT_STEM_DSN = "postgresql://postgres@127.0.0.1:5432/bench_loop_stem"
DEFAULT_PGQ_DSN = "postgresql://postgres@127.0.0.1:5432/bench_loop_pgq"


def _dbname(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


def admin_dsn(dsn: str) -> str:
    """The ``postgres`` database of ``dsn``'s server (the shared server's: ``test``)."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = "postgres"
    same = psycopg.conninfo.conninfo_to_dict(ADMIN_DSN)
    if (params.get("host"), params.get("port")) == (same.get("host"), same.get("port")):
        return ADMIN_DSN
    return psycopg.conninfo.make_conninfo(**params)


def commits(dsn: str, timeout: float = 30.0) -> int:
    """The database's committed transactions once no backend is connected to it."""
    name = _dbname(dsn)
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin_dsn(dsn), autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
            if row is not None and row[0] == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"connections to {name} still open after {timeout:.0f} s")
            time.sleep(0.05)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
        return int(row[0]) if row else 0


def _cpu() -> float:
    """This process's CPU seconds (user + system) so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _stem_producer(dsn: str, namespace: str, seconds: float, start_at: float) -> tuple[int, float, float]:
    """Calls made, seconds taken and the producer's CPU seconds in them."""
    app = make_app(dsn, namespace)
    calls = 0
    try:
        app.enqueue("noop", {})  # open the pool (not counted)
        time.sleep(max(0.0, start_at - time.time()))
        cpu = _cpu()
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            app.enqueue("noop", {})
            calls += 1
        return calls, time.perf_counter() - start, _cpu() - cpu
    finally:
        app.close()


def stem_loop(dsn: str, namespace: str, seconds: float, processes: int = 1) -> dict[str, Any]:
    """``processes`` producers (separate processes, one app each), each enqueueing in a loop."""
    reset(dsn, namespace)
    before = commits(dsn)
    start_at = time.time() + 1.0 + 0.2 * processes
    if processes == 1:
        calls, elapsed, cpu = _stem_producer(dsn, namespace, seconds, start_at)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes) as pool:
            done = pool.starmap(_stem_producer, [(dsn, namespace, seconds, start_at)] * processes)
        calls, elapsed, cpu = sum(d[0] for d in done), max(d[1] for d in done), sum(d[2] for d in done)
    row = _row("stem_pg", calls, elapsed, commits(dsn) - before, cpu)
    row["processes"] = processes
    return row


def pgq_loop(dsn: str, seconds: float) -> dict[str, Any]:
    pgq.reset(dsn)
    before = commits(dsn)

    async def run() -> tuple[int, float, float]:
        queries, conn = await pgq._queries(dsn)
        calls = 0
        try:
            cpu = _cpu()
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                await queries.enqueue("noop", None)
                calls += 1
            return calls, time.perf_counter() - start, _cpu() - cpu
        finally:
            await pgq._close(conn)

    calls, elapsed, cpu = asyncio.run(run())
    return _row("pgqueuer", calls, elapsed, commits(dsn) - before, cpu)


def _row(system: str, calls: int, elapsed: float, committed: int, cpu: float) -> dict[str, Any]:
    row = {
        "system": system,
        "calls": calls,
        "seconds": elapsed,
        "jobs_per_s": calls / elapsed,
        "commits": committed,
        "commits_per_call": committed / calls if calls else None,
        "cpu_us_per_call": 1e6 * cpu / calls if calls else None,
    }
    per_call = f"{committed / calls:.2f} commits/call" if calls else f"{committed} commits, no calls"
    log(f"{system} enqueue loop: {row['jobs_per_s']:,.0f} jobs/s, {per_call}")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.enqueue_loop", description=__doc__)
    parser.add_argument("--dsn", default=DEFAULT_STEM_DSN)
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--pgq-dsn", default=DEFAULT_PGQ_DSN)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pgqueuer", action="store_true")
    parser.add_argument(
        "--processes", type=int, default=1, help="stem_pg producer processes (each its own app and loop)"
    )
    args = parser.parse_args(argv)
    install_signal_cleanup()
    # Another server (e.g. a scratch cluster on tmpfs, to take the disk's fsync out): create
    # the databases there, not on the shared server.
    common.ensure_database.__defaults__ = (admin_dsn(args.dsn),)
    rows: list[dict[str, Any]] = []
    for _ in range(args.repeat):
        rows.append(stem_loop(args.dsn, args.namespace, args.seconds, args.processes))
        if not args.no_pgqueuer:
            rows.append(pgq_loop(args.pgq_dsn, args.seconds))
    table = Table(["run", "system", "jobs/s", "commits/call", "producer CPU us/call", "vs pgqueuer"])
    for i in range(0, len(rows), 1 if args.no_pgqueuer else 2):
        pair = rows[i : i + (1 if args.no_pgqueuer else 2)]
        versus = ratio(pair[0]["jobs_per_s"], pair[1]["jobs_per_s"]) if len(pair) == 2 else None
        for row in pair:
            table.add(
                i // len(pair) + 1,
                row["system"],
                row["jobs_per_s"],
                row["commits_per_call"],
                row["cpu_us_per_call"],
                versus if row["system"] == "stem_pg" else "",
            )
    print(table.markdown())
    write_json("enqueue-loop", {"results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
