"""The test helpers' store (stem_pg.testing): live jobs listed, counted and made due."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class LiveJob:
    """One row of the jobs table, as ``enqueued_jobs`` shows it."""

    id: str
    task: str
    queue: str
    priority: int
    state: str
    args: dict[str, Any]
    headers: dict[str, Any]
    attempts: int
    max_retries: int
    enqueued_at: datetime
    not_before: datetime


class TestingStore:
    """``testing_*`` queries of one namespace, on connections the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def create_namespace(self, conn: Conn, *, script: str) -> None:
        """Run ``script``, the migrations' SQL rendered for this namespace (``stem migrate --sql``)."""
        conn.execute(script.encode())

    def drop_namespace(self, conn: Conn) -> None:
        """Drop the namespace's schema and everything in it."""
        conn.execute(self.q["testing_drop_namespace"])

    def jobs(self, conn: Conn, *, task: str | None, queue: str | None) -> list[LiveJob]:
        """Live jobs (queued, retried or running), oldest first, of ``task`` and ``queue`` (None: any)."""
        with conn.cursor(row_factory=class_row(LiveJob)) as cur:
            cur.execute(self.q["testing_jobs"], {"task": task, "queue": queue})
            return cur.fetchall()

    async def queues(self, conn: AsyncConn) -> list[str]:
        """The queues that hold live jobs."""
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(self.q["testing_queues"])
            return [str(queue) for queue in await cur.fetchall()]

    async def unsettled(
        self, conn: AsyncConn, *, queues: Sequence[str], tasks: list[str] | None, scheduled: bool
    ) -> int:
        """How many jobs of ``queues`` (and ``tasks``; None: any) are due or running (or, with
        ``scheduled``, live at all: a retry just written waits, and is made due next)."""
        params = {"queues": list(queues), "tasks": tasks, "scheduled": scheduled}
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(self.q["testing_unsettled"], params)
            found = await cur.fetchone()
            return int(found or 0)

    async def make_due(self, conn: AsyncConn, *, queues: Sequence[str], tasks: list[str] | None) -> int:
        """Waiting jobs of ``queues`` (and ``tasks``) become due now; returns how many."""
        cur = await conn.execute(self.q["testing_make_due"], {"queues": list(queues), "tasks": tasks})
        return cur.rowcount
