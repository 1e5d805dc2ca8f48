"""What the web dashboard reads: one method per query of ``sql/dashboard.sql`` (synchronous).

Lists take a page key (the last row's sort key) instead of an offset, so page 500 of a
million jobs costs what page 1 does.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow, class_row, scalar_row

from stem_pg.core.states import LIVE_STATES, TERMINAL_STATES
from stem_pg.db.queries import Queries, query_text
from stem_pg.db.stores.dashboard_rows import (
    BroadcastRow,
    BucketRow,
    CanvasLink,
    CanvasRow,
    DeliveryRow,
    FailureRow,
    JobFilter,
    JobRow,
    LiveJob,
    MemberRow,
    MinuteRow,
    QueueRow,
    QueueSummary,
    RunDetail,
    RunningJob,
    RunRow,
    StepRow,
    WorkerCounts,
)
from stem_pg.db.stores.dead_letters import DeadLetter, DeadLetterDetail
from stem_pg.db.stores.results import ResultStore
from stem_pg.db.stores.rows import StoredResult

Conn = psycopg.Connection[TupleRow]
R = TypeVar("R")

#: The page key of a first page: before everything.
LATEST = datetime.max.replace(year=9999)
LAST_ID = 2**62


class DashboardStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def _all(self, conn: Conn, name: str, row: type[R], **params: Any) -> builtins.list[R]:
        with conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(self.q[name], params)
            return cur.fetchall()

    def _one(self, conn: Conn, name: str, row: type[R], **params: Any) -> R | None:
        found = self._all(conn, name, row, **params)
        return found[0] if found else None

    @staticmethod
    def namespaces(conn: Conn) -> builtins.list[str]:
        """The migrated namespaces the connected role may read."""
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(query_text("dash_namespaces"))
            return [str(name) for name in cur.fetchall()]

    def queues(self, conn: Conn) -> builtins.list[QueueRow]:
        return self._all(conn, "dash_queues", QueueRow)

    def queue_summaries(self, conn: Conn) -> builtins.list[QueueSummary]:
        """Each queue's depth and last 15 minutes' counts, without queue_health's percentiles."""
        return self._all(conn, "dash_overview_queues", QueueSummary)

    def buckets(self, conn: Conn, *, queue: str) -> builtins.list[BucketRow]:
        return self._all(conn, "dash_queue_buckets", BucketRow, queue=queue)

    def minutes(self, conn: Conn) -> builtins.list[MinuteRow]:
        return self._all(conn, "dash_minutes", MinuteRow)

    def recent_failures(self, conn: Conn, *, limit: int) -> builtins.list[FailureRow]:
        return self._all(conn, "dash_recent_failures", FailureRow, limit=limit)

    def jobs(
        self, conn: Conn, *, where: JobFilter, before: tuple[datetime, str] | None, limit: int
    ) -> builtins.list[JobRow]:
        """A page of jobs newest first, strictly before the page key ``before``. A search
        that is exactly a job's id finds that job alone (by primary key); any other search
        scans for the text in ids, task names and errors, newest first, until a page is full
        (narrow it with since/until on a big namespace)."""
        if where.search and before is None:
            exact = self._all(conn, "dash_job_exact", JobRow, id=where.search)
            if exact:
                return exact
        before_at, before_id = before or (LATEST, "")
        if where.until is not None and where.until <= before_at:
            before_at, before_id = where.until, ""
        params = {
            "with_live": where.state is None or where.state in LIVE_STATES,
            "with_finished": where.state is None or where.state in TERMINAL_STATES,
            "before_at": before_at,
            "before_id": before_id,
            "since": where.since,
            "state": where.state,
            "task": where.task,
            "queue": where.queue,
            "search": where.search,
            "limit": limit,
        }
        return self._all(conn, "dash_jobs_page", JobRow, **params)

    def live_job(self, conn: Conn, *, id: str) -> LiveJob | None:
        return self._one(conn, "dash_job_live", LiveJob, id=id)

    def result(self, conn: Conn, *, id: str) -> StoredResult | None:
        return ResultStore(self.q).result(conn, id=id)

    def dead_of(self, conn: Conn, *, id: str) -> builtins.list[DeadLetterDetail]:
        return self._all(conn, "dash_job_dead", DeadLetterDetail, id=id)

    def canvas_of(self, conn: Conn, *, id: str) -> CanvasLink | None:
        return self._one(conn, "dash_job_canvas", CanvasLink, id=id)

    def dead_letters(
        self, conn: Conn, *, queue: str | None, before: int | None, limit: int
    ) -> builtins.list[DeadLetter]:
        return self._all(
            conn, "dash_dead_letters", DeadLetter, queue=queue, before=before or LAST_ID, limit=limit
        )

    def running(self, conn: Conn) -> builtins.list[RunningJob]:
        return self._all(conn, "dash_running", RunningJob)

    def worker_counts(self, conn: Conn) -> builtins.list[WorkerCounts]:
        return self._all(conn, "dash_worker_counts", WorkerCounts)

    def runs(
        self, conn: Conn, *, status: str, before: tuple[datetime, str] | None, limit: int
    ) -> builtins.list[RunRow]:
        before_at, before_id = before or (LATEST, "")
        return self._all(
            conn,
            "dash_workflow_runs",
            RunRow,
            status=status,
            before_at=before_at,
            before_id=before_id,
            limit=limit,
        )

    def run(self, conn: Conn, *, id: str) -> RunDetail | None:
        return self._one(conn, "dash_workflow_run", RunDetail, id=id)

    def steps(self, conn: Conn, *, id: str) -> builtins.list[StepRow]:
        return self._all(conn, "dash_workflow_steps", StepRow, id=id)

    def canvases(
        self, conn: Conn, *, before: tuple[datetime, str] | None, limit: int
    ) -> builtins.list[CanvasRow]:
        before_at, before_id = before or (LATEST, "")
        return self._all(
            conn, "dash_canvases", CanvasRow, before_at=before_at, before_id=before_id, limit=limit
        )

    def members(self, conn: Conn, *, id: str) -> builtins.list[MemberRow]:
        return self._all(conn, "dash_canvas_members", MemberRow, id=id)

    def broadcasts(self, conn: Conn, *, before: int | None, limit: int) -> builtins.list[BroadcastRow]:
        return self._all(conn, "dash_broadcasts", BroadcastRow, before=before or LAST_ID, limit=limit)

    def deliveries(self, conn: Conn, *, id: int) -> builtins.list[DeliveryRow]:
        return self._all(conn, "dash_broadcast_deliveries", DeliveryRow, id=id)
