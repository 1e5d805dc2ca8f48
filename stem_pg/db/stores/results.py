"""The result store: what result handles read (``task_status``, ``task_result``), sync and async."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import class_row

from stem_pg.db.queries import Queries
from stem_pg.db.stores.rows import StoredResult, TaskStatus

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


class ResultStore:
    """Result queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def status(self, conn: Conn, *, ids: list[str]) -> list[TaskStatus]:
        """The ``task_states`` rows of ``ids``: live and finished ones alike."""
        with conn.cursor(row_factory=class_row(TaskStatus)) as cur:
            cur.execute(self.q["task_status"], {"ids": ids})
            return cur.fetchall()

    def result(self, conn: Conn, *, id: str) -> StoredResult | None:
        """The stored outcome of ``id``, or None while it has not finished."""
        with conn.cursor(row_factory=class_row(StoredResult)) as cur:
            cur.execute(self.q["task_result"], {"id": id})
            return cur.fetchone()


class AsyncResultStore:
    """The same queries on an asynchronous connection."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def status(self, conn: AsyncConn, *, ids: list[str]) -> list[TaskStatus]:
        async with conn.cursor(row_factory=class_row(TaskStatus)) as cur:
            await cur.execute(self.q["task_status"], {"ids": ids})
            return await cur.fetchall()

    async def result(self, conn: AsyncConn, *, id: str) -> StoredResult | None:
        async with conn.cursor(row_factory=class_row(StoredResult)) as cur:
            await cur.execute(self.q["task_result"], {"id": id})
            return await cur.fetchone()
