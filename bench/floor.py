"""The latency floor of this machine: enqueue -> pickup with nothing but psycopg.

``python -m bench.floor [--jobs 1000]``. The same path the latency benchmark times,
stripped to its round trips: this process inserts a row (a durable commit) and then
sends a NOTIFY; a listening subprocess wakes and claims the row with
``FOR UPDATE SKIP LOCKED`` on a second connection (a durable commit, as stem_pg's
claim is since 2026-12-01), then reports. Same gaps as ``python -m bench latency``
(5-20 ms, so every process is idle when a job arrives). No job system is this fast:
what a system adds on top of these numbers is its own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import psycopg

from bench.common import DEFAULT_DSN, Table, ensure_database, latency_summary, log, write_json

CLAIM = """
WITH picked AS (
    SELECT id FROM floor_jobs WHERE state = 0 ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED
)
UPDATE floor_jobs AS j SET state = 1 FROM picked WHERE j.id = picked.id RETURNING j.t
"""


async def listener(dsn: str, sock_path: str) -> None:
    """The subprocess: LISTEN, claim on every wake-up, report (now - enqueue time)."""
    out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listen = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    claim = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await listen.execute("LISTEN floor_jobs")
    out.sendto(b"ready", sock_path)
    while True:
        async for _ in listen.notifies(timeout=1.0, stop_after=1):
            pass
        woke = time.time()
        rows = await (await claim.execute(CLAIM)).fetchall()
        claimed = time.time()
        for (t,) in rows:
            out.sendto(f"{woke - t:.6f} {claimed - t:.6f}".encode(), sock_path)


def run(dsn: str, jobs: int, gap_ms: tuple[float, float] = (5.0, 20.0), seed: int = 1) -> dict[str, Any]:
    ensure_database(dsn)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "floor.sock")
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        inbox.bind(sock_path)
        inbox.settimeout(5.0)
        conn = psycopg.connect(dsn, autocommit=True)
        conn.execute("DROP TABLE IF EXISTS floor_jobs")
        conn.execute("CREATE TABLE floor_jobs (id bigserial PRIMARY KEY, state int DEFAULT 0, t float8)")
        child = subprocess.Popen([sys.executable, "-m", "bench.floor", "--listener", sock_path, "--dsn", dsn])
        try:
            inbox.recv(100)  # ready
            committed: list[float] = []
            woke: list[float] = []
            claimed: list[float] = []
            for n in range(jobs + 20):
                time.sleep(rng.uniform(*gap_ms) / 1000)
                t = time.time()
                conn.execute("INSERT INTO floor_jobs (t) VALUES (%s)", (t,))
                done = time.time()
                conn.execute("SELECT pg_notify('floor_jobs', 'q')")
                a, b = (float(x) for x in inbox.recv(100).decode().split())
                if n >= 20:  # warm-up
                    committed.append((done - t) * 1000)
                    woke.append(a * 1000)
                    claimed.append(b * 1000)
        finally:
            child.kill()
            child.wait()
            conn.execute("DROP TABLE IF EXISTS floor_jobs")
            conn.close()
    result = {
        "jobs": jobs,
        "insert_commit_ms": latency_summary(committed),
        "notify_received_ms": latency_summary(woke),
        "claimed_ms": latency_summary(claimed),
    }
    log(
        f"floor: insert committed p50 {result['insert_commit_ms']['p50_ms']:.2f} ms, notify received"
        f" {result['notify_received_ms']['p50_ms']:.2f} ms, claimed {result['claimed_ms']['p50_ms']:.2f} ms"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--listener", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listener:
        asyncio.run(listener(args.dsn, args.listener))
        return 0
    result = run(args.dsn, args.jobs)
    table = Table(["since the insert started, ms", "p50", "p99"])
    for key, label in (
        ("insert_commit_ms", "insert committed (durable)"),
        ("notify_received_ms", "NOTIFY received by the listener"),
        ("claimed_ms", "row claimed (SKIP LOCKED, async commit)"),
    ):
        table.add(label, result[key]["p50_ms"], result[key]["p99_ms"])
    print(table.markdown())
    write_json("floor", {"floor": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
