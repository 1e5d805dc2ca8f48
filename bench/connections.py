"""Postgres connections per worker process, counted in ``pg_stat_activity`` during a drain.

Each stem_pg connection carries ``application_name`` ``stem_pg:<role>``; a backend's
``client_port`` is matched to the worker process whose socket has that local port
(Linux /proc), as tests/acceptance/test_worker_connections.py does. Over a Unix socket
(no ports) the stem_pg backends of the database are divided by the worker processes.
The query runs on the server's admin database, so it adds no backend to the one measured.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import Proc


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s sockets."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[9]) in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class ConnectionSampler:
    """Call it while the workers run (it looks every ``every`` seconds at most; ``force``:
    now): the most stem_pg connections one worker process held, and the most the database
    had in all."""

    def __init__(self, dsn: str, proc: Proc, every: float = 0.25) -> None:
        from bench.enqueue_loop import admin_dsn

        self.dbname = str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
        self.admin = admin_dsn(dsn)
        self.proc = proc
        self.every = every
        self.next_at = 0.0
        self.samples = 0
        self.max_per_process = 0
        self.max_total = 0
        self.roles: dict[str, int] = {}  # application_name -> count, at the largest sample
        self.by_port = True
        self._conn: psycopg.Connection[Any] | None = None

    def __call__(self, force: bool = False) -> None:
        now = time.monotonic()
        if now < self.next_at and not force:
            return
        self.next_at = now + self.every
        pids = self.proc.worker_pids()
        if self._conn is None:
            self._conn = psycopg.connect(self.admin, autocommit=True)
        rows = self._conn.execute(
            "SELECT application_name, client_port FROM pg_stat_activity"
            " WHERE datname = %s AND application_name LIKE 'stem_pg:%%'",
            (self.dbname,),
        ).fetchall()
        self.samples += 1
        if len(rows) > self.max_total:
            self.max_total = len(rows)
            self.roles = {}
            for name, _ in rows:
                self.roles[name] = self.roles.get(name, 0) + 1
        if rows and all(port in (None, -1) for _, port in rows):  # a Unix socket: no ports to match
            self.by_port = False
            self.max_per_process = max(self.max_per_process, -(-len(rows) // max(1, len(pids))))
            return
        for pid in pids:
            ports = local_ports(pid)
            self.max_per_process = max(self.max_per_process, sum(1 for _, port in rows if port in ports))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def result(self) -> dict[str, Any]:
        return {
            "max_connections_per_process": self.max_per_process,
            "max_stem_connections_total": self.max_total,
            "connection_roles_at_max": self.roles,
            "connections_matched_by_port": self.by_port,
            "connection_samples": self.samples,
        }
