"""Where a wake-up's milliseconds go: a traced latency run, and this machine's bare hops.

``python -m bench.wakeup trace [--jobs 600] [--connections minimal|per-loop]``: the
latency benchmark's loop (one job at a time, 5-20 ms apart, an idle worker), with the
worker instrumented (``BENCH_WAKE_TRACE=1``: bench.stem_app calls ``instrument()``). For
each job, the wall-clock times after ``enqueue()`` was called of: ``enqueue()`` returning
(the insert and its NOTIFY committed), the NOTIFY read by the listener, the claim loop
awake, the claim sent (its turn on a shared connection taken), the claim's rows back,
and the handler's first line.

``python -m bench.wakeup hops [--jobs 500]``: the floors of the hops that path is made
of, between two idle processes of this machine, with the same gaps: a Unix datagram
ping-pong (the OS's wake-up), a ``SELECT 1`` round trip, a ``NOTIFY`` from one process
read by a LISTENing asyncio psycopg connection in another, and a one-row durable
INSERT's round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.common import DEFAULT_DSN, PROBE, PROBE_ENV, Collector, Table, ensure_database, latency_summary

TRACE_ENV = "BENCH_WAKE_TRACE"
STAGES = ("returned", "notified", "woke", "sent", "back", "started")
LABELS = {
    "returned": "enqueue() returned (insert + NOTIFY committed)",
    "notified": "NOTIFY read by the worker's listener",
    "woke": "claim loop awake",
    "sent": "claim sent (its turn taken)",
    "back": "claim's rows back",
    "started": "handler started",
}
_MARKS: dict[str, float] = {}


# -- worker side ---------------------------------------------------------------------


def instrument() -> None:
    """Stamp the worker's wake-up path (called by bench.stem_app under ``BENCH_WAKE_TRACE=1``)."""
    from stem_pg.db.shared import Turns
    from stem_pg.db.stores.jobs import JobStore
    from stem_pg.worker import listener
    from stem_pg.worker.limited import LimitedClaims

    plain = listener.notifications

    async def notifications(conn: Any, **kwargs: Any) -> AsyncIterator[psycopg.Notify]:
        async for note in plain(conn, **kwargs):
            _MARKS.setdefault("notified", time.time())
            yield note

    listener.notifications = notifications  # type: ignore[assignment]

    woke = LimitedClaims.woke

    def stamped_woke(self: LimitedClaims) -> None:
        _mark("woke")
        woke(self)

    LimitedClaims.woke = stamped_woke  # type: ignore[method-assign]
    send = JobStore._send_claim

    @functools.wraps(send)
    async def stamped_send(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        _mark("sent")
        return await send(self, *args, **kwargs)

    JobStore._send_claim = stamped_send  # type: ignore[method-assign]
    claim = LimitedClaims.claim

    @functools.wraps(claim)
    async def stamped_claim(self: LimitedClaims, *args: Any, **kwargs: Any) -> Any:
        jobs = await claim(self, *args, **kwargs)
        if jobs:
            _MARKS.setdefault("back", time.time())
        return jobs

    LimitedClaims.claim = stamped_claim  # type: ignore[method-assign]
    hold = Turns.hold

    @contextlib.asynccontextmanager
    async def stamped_hold(self: Turns) -> AsyncIterator[None]:
        async with hold(self):
            task = asyncio.current_task()
            if task is not None and task.get_name() == "claimer":
                _mark("sent")  # the claim's turn on the shared connection, after any wait
            yield

    Turns.hold = stamped_hold  # type: ignore[method-assign]


def _mark(stage: str) -> None:
    """The last wake-up and claim before the rows came back (the claims after a finished job
    found nothing)."""
    if "back" not in _MARKS:
        _MARKS[stage] = time.time()


def report(enqueued_at: float) -> None:
    """The handler of job ``enqueued_at`` starts: send its marks, and forget them."""
    now = time.time()
    marks = [_MARKS.get(k, 0.0) for k in STAGES[1:-1]]
    _MARKS.clear()
    PROBE._send("W " + " ".join(repr(x) for x in (enqueued_at, *marks, now)))


# -- harness side: the traced run ----------------------------------------------------


def trace(dsn: str, jobs: int, connections: str | None, seed: int = 1) -> dict[str, Any]:
    from bench import bench_stem
    from bench.bench_stem import BEST_PREFETCH, make_app, reset, start_worker
    from bench.common import running

    if connections:
        bench_stem.WORKER_FLAGS.extend(["--connections", connections])
    os.environ[TRACE_ENV] = "1"
    ensure_database(dsn)
    reset(dsn, "bench")
    rng = random.Random(seed)
    app = make_app(dsn, "bench")
    rows: dict[str, list[float]] = {k: [] for k in STAGES}
    with Collector() as collector:
        path, prefetch = collector.path, BEST_PREFETCH
        proc = start_worker(
            dsn, "bench", processes=1, concurrency=10, prefetch=prefetch, probe_path=path, name="wakeup"
        )
        try:
            with running([proc]):
                deadline, missed = time.monotonic() + 60, 0
                for n in range(-20, jobs):
                    time.sleep(rng.uniform(0.005, 0.020))
                    t = time.time()
                    app.enqueue("lat", {"t": t})
                    returned = time.time()
                    fields = _wait(collector, t, 2.0 if n >= -19 else max(1.0, deadline - time.monotonic()))
                    missed = 0 if fields is not None else missed + 1
                    if missed >= 5:
                        raise RuntimeError(f"5 jobs in a row never started: see {proc.log_path}")
                    if fields is None or n < 0:
                        continue
                    for key, value in zip(STAGES, [returned, *fields], strict=True):
                        rows[key].append((value - t) * 1000 if value else float("nan"))
        finally:
            app.close()
    return {k: latency_summary([x for x in v if x == x]) for k, v in rows.items()}


def _wait(collector: Collector, t: float, timeout: float) -> list[float] | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        fields = collector.recv(left)
        if fields and fields[0] == "W" and float(fields[1]) == t:
            return [float(x) for x in fields[2:]]
    return None


# -- harness side: the bare hops -----------------------------------------------------


async def _peer(dsn: str, sock_path: str) -> None:
    """The other process: answers datagrams, and reports each NOTIFY's arrival."""
    out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    inbox_path = sock_path + ".peer"
    inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    inbox.bind(inbox_path)
    inbox.setblocking(False)
    listen = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await listen.execute("LISTEN wakeup_hops")
    loop = asyncio.get_running_loop()

    def ping() -> None:
        data = inbox.recv(100)
        out.sendto(data, sock_path)

    loop.add_reader(inbox.fileno(), ping)
    out.sendto(b"ready", sock_path)
    async for note in listen.notifies():
        out.sendto(f"{time.time()!r} {note.payload}".encode(), sock_path)


def hops(dsn: str, jobs: int, seed: int = 1) -> dict[str, Any]:
    ensure_database(dsn)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {k: [] for k in ("dgram", "select", "notify", "insert")}
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "hops.sock")
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        inbox.bind(sock_path)
        inbox.settimeout(5.0)
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("DROP TABLE IF EXISTS wakeup_hops")
        conn.execute("CREATE TABLE wakeup_hops (id bigserial PRIMARY KEY, t float8)")
        child = subprocess.Popen([sys.executable, "-m", "bench.wakeup", "--peer", sock_path, "--dsn", dsn])
        try:
            inbox.recv(100)

            def dgram() -> None:
                inbox.sendto(b"x", sock_path + ".peer")
                inbox.recv(100)

            steps: dict[str, Callable[[], object]] = {
                "dgram": dgram,
                "select": lambda: conn.execute("SELECT 1"),
                "insert": lambda: conn.execute("INSERT INTO wakeup_hops (t) VALUES (1)"),
            }
            for n in range(jobs + 20):
                for key in ("dgram", "select", "notify", "insert"):
                    time.sleep(rng.uniform(0.005, 0.020))
                    t = time.time()
                    if key == "notify":
                        conn.execute("SELECT pg_notify('wakeup_hops', 'x')")
                        arrived = float(inbox.recv(100).decode().split()[0])
                    else:
                        steps[key]()
                        arrived = time.time()
                    if n >= 20:
                        samples[key].append((arrived - t) * 1000)
        finally:
            child.kill()
            child.wait()
            conn.execute("DROP TABLE IF EXISTS wakeup_hops")
            conn.close()
    return {k: latency_summary(v) for k, v in samples.items()}


# -- harness side: two trees, job by job -----------------------------------------------


def ab(dsn: str, base: str, jobs: int, connections: str | None, seed: int = 1) -> dict[str, Any]:
    """The latency loop against two workers at once, one of the source tree ``base`` (A)
    and one of this tree (B), each on its own namespace: jobs go to A and B in turn (the
    order alternating), so both see the same moments of a machine that others load."""
    from bench.bench_stem import BEST_PREFETCH, make_app, reset
    from bench.common import ROOT, running, spawn

    flags = ["--connections", connections] if connections else []
    ensure_database(dsn)
    trees = {"A": Path(base).resolve(), "B": ROOT}
    apps: dict[str, Any] = {}
    samples: dict[str, list[float]] = {"A": [], "B": []}
    rng = random.Random(seed)
    with Collector() as collector:
        procs = []
        for side, tree in trees.items():
            namespace = f"bench_ab_{side.lower()}"
            reset(dsn, namespace)
            apps[side] = make_app(dsn, namespace)
            argv = [sys.executable, "-m", "stem_pg", "worker", "run", "--app", "bench.stem_app:app"]
            argv += ["--namespace", namespace, "--processes", "1", "--concurrency", "10"]
            argv += ["--prefetch-multiplier", str(BEST_PREFETCH), *flags]
            env = {"PYTHONPATH": str(tree), PROBE_ENV: collector.path, "BENCH_DSN": dsn}
            procs.append(spawn(f"ab-{side}", argv, {**env, "BENCH_NAMESPACE": namespace}, cwd=tree))
        try:
            with running(procs):
                for n in range(-20, jobs):
                    for side in ("A", "B") if n % 2 else ("B", "A"):
                        time.sleep(rng.uniform(0.005, 0.020))
                        t = time.time()
                        apps[side].enqueue("lat", {"t": t})
                        got = _wait_latency(collector, t, 60.0 if n == -20 else 2.0)
                        if got is not None and n >= 0:
                            samples[side].append(got)
        finally:
            for app in apps.values():
                app.close()
    return {side: latency_summary(v) for side, v in samples.items()}


def _wait_latency(collector: Collector, t: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        fields = collector.recv(left)
        if fields and fields[0] == "L" and float(fields[1]) == t:
            return (float(fields[2]) - t) * 1000
    return None


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    tr = sub.add_parser("trace", help="the latency run, with the worker's path stamped")
    tr.add_argument("--jobs", type=int, default=600)
    tr.add_argument("--connections", choices=("minimal", "per-loop"))
    ap = sub.add_parser("ab", help="two source trees' workers, jobs in turn (A: --base, B: this tree)")
    ap.add_argument("--base", required=True, help="a source tree (e.g. a git archive of main)")
    ap.add_argument("--jobs", type=int, default=1000, help="jobs per side")
    ap.add_argument("--connections", choices=("minimal", "per-loop"))
    hp = sub.add_parser("hops", help="this machine's bare hops between two idle processes")
    hp.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    if args.peer:
        asyncio.run(_peer(args.dsn, args.peer))
        return 0
    if args.command == "trace":
        result = trace(args.dsn, args.jobs, args.connections)
        table = Table(["ms after enqueue() was called", "p50", "p90", "p99"])
        for key in STAGES:
            s = result[key]
            table.add(LABELS[key], s["p50_ms"], s.get("p90_ms", float("nan")), s["p99_ms"])
        print(table.markdown())
        return 0
    if args.command == "ab":
        result = ab(args.dsn, args.base, args.jobs, args.connections)
        table = Table(["enqueue -> start, ms", "p50", "p90", "p99", "n"])
        for side, label in (("A", f"A {args.base}"), ("B", "B this tree")):
            s = result[side]
            table.add(label, s["p50_ms"], s["p90_ms"], s["p99_ms"], s["n"])
        table.add("B / A", *(result["B"][k] / result["A"][k] for k in ("p50_ms", "p90_ms", "p99_ms")), "")
        print(table.markdown())
        return 0
    if args.command == "hops":
        result = hops(args.dsn, args.jobs)
        table = Table(["hop (idle, 5-20 ms gaps), ms", "p50", "p99"])
        for key, label in (
            ("dgram", "Unix datagram ping-pong with another process"),
            ("select", "SELECT 1 round trip"),
            ("notify", "pg_notify() -> read by a LISTENing asyncio psycopg in another process"),
            ("insert", "one-row INSERT, durable commit, round trip"),
        ):
            table.add(label, result[key]["p50_ms"], result[key]["p99_ms"])
        print(table.markdown())
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
