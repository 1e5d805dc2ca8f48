"""Readings for ``stem check``: the ``queue_health`` view, alive workers, overdue schedules (synchronous)."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow, class_row, scalar_row

from stem_pg.core.probes import LateSchedule, QueueRow
from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


class ProbeStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def queues(self, conn: Conn) -> list[QueueRow]:
        """Every queue the ``queue_health`` view lists (live jobs, or finished in 15 minutes)."""
        with conn.cursor(row_factory=class_row(QueueRow)) as cur:
            cur.execute(self.q["probe_queues"])
            return cur.fetchall()

    def alive_worker_queues(self, conn: Conn, *, stale_after: float) -> list[list[str]]:
        """The queues of each alive worker: not stopped, a heartbeat within ``stale_after`` seconds."""
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(self.q["probe_workers_alive"], {"stale_after": stale_after})
            return [list(queues) for queues in cur.fetchall()]

    def late_schedules(self, conn: Conn, *, max_lag: float) -> list[LateSchedule]:
        """Enabled schedule entries whose next run is overdue by more than ``max_lag`` seconds."""
        with conn.cursor(row_factory=class_row(LateSchedule)) as cur:
            cur.execute(self.q["probe_late_schedules"], {"max_lag": max_lag})
            return cur.fetchall()
