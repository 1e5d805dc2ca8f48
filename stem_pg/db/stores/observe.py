"""Readings for ``stem observe``: the ``queue_health`` view, workers, dead letters and schedules,
with ages measured by the database's clock (synchronous)."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.observe import DeadLetterGroup, QueueHealth, ScheduleView, WorkerView
from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


class ObserveStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def queues(self, conn: Conn) -> list[QueueHealth]:
        """Every queue the ``queue_health`` view lists (live jobs, or finished in 15 minutes)."""
        with conn.cursor(row_factory=class_row(QueueHealth)) as cur:
            cur.execute(self.q["observe_queues"])
            return cur.fetchall()

    def workers(self, conn: Conn, *, stale_after: float) -> list[WorkerView]:
        """Every known worker, alive ones first; stale after ``stale_after`` silent seconds."""
        with conn.cursor(row_factory=class_row(WorkerView)) as cur:
            cur.execute(self.q["observe_workers"], {"stale_after": stale_after})
            return cur.fetchall()

    def dead_letters(self, conn: Conn) -> list[DeadLetterGroup]:
        """Dead letters not yet replayed, grouped by queue and task, largest group first."""
        with conn.cursor(row_factory=class_row(DeadLetterGroup)) as cur:
            cur.execute(self.q["observe_dlq"])
            return cur.fetchall()

    def schedules(self, conn: Conn) -> list[ScheduleView]:
        """Every schedule entry, by name."""
        with conn.cursor(row_factory=class_row(ScheduleView)) as cur:
            cur.execute(self.q["observe_schedules"])
            return cur.fetchall()
