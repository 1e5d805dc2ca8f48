"""Debounced enqueue's statements (``sql/jobs.sql``), on a pool's psycopg connection (sync or async)."""

from __future__ import annotations

from typing import Any

import psycopg

from stem_pg.core.envelope import JobSpec
from stem_pg.db.queries import Queries

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


class DebounceStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def holder(self, conn: Conn, *, task: str, key: str) -> str | None:
        """The id of the job of ``task`` and ``key`` that waits to start, locked; or None."""
        row = conn.execute(self.q["job_debounce_holder"], {"task": task, "key": key}).fetchone()
        return str(row[0]) if row else None

    def replace(self, conn: Conn, *, spec: JobSpec, delay: float) -> None:
        """Make the locked holder ``spec.id`` run ``spec``'s call ``delay`` seconds from now."""
        conn.execute(self.q["job_debounce_replace"], {**spec.params(), "delay": delay})

    def insert(self, conn: Conn, *, spec: JobSpec, key: str, delay: float) -> bool:
        """Insert ``spec`` as the job of its task and ``key``; False if another one holds them."""
        params = {**spec.params(), "key": key, "delay": delay}
        return conn.execute(self.q["job_debounce_insert"], params).fetchone() is not None

    async def aholder(self, conn: AsyncConn, *, task: str, key: str) -> str | None:
        cur = await conn.execute(self.q["job_debounce_holder"], {"task": task, "key": key})
        row = await cur.fetchone()
        return str(row[0]) if row else None

    async def areplace(self, conn: AsyncConn, *, spec: JobSpec, delay: float) -> None:
        await conn.execute(self.q["job_debounce_replace"], {**spec.params(), "delay": delay})

    async def ainsert(self, conn: AsyncConn, *, spec: JobSpec, key: str, delay: float) -> bool:
        params = {**spec.params(), "key": key, "delay": delay}
        cur = await conn.execute(self.q["job_debounce_insert"], params)
        return await cur.fetchone() is not None
