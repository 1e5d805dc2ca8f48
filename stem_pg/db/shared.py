"""One connection that several of a worker's loops share (``--connections minimal``): each
statement, and each explicit transaction as a whole, holds the connection alone.

psycopg already sends one statement at a time per connection, but a transaction of several
statements (the flusher's finish + retry) would take in another loop's statement sent in
between: a lease extension that rolled back with it would be believed. So every statement
and every ``transaction()`` block takes a per-task reentrant lock (the statements inside a
block pass, being the same task's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncPipeline, AsyncTransaction
from psycopg.abc import Params
from psycopg.rows import Row, TupleRow


class Turns:
    """A lock that the task holding it may take again (its nested statements)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield
            return
        async with self._lock:
            self._owner = task
            try:
                yield
            finally:
                self._owner = None


class SharedCursor(psycopg.AsyncCursor[Row]):
    """A cursor whose statements wait for the connection's turn."""

    async def execute(
        self,
        query: Any,  # psycopg's Query (its union is too wide for mypy to check the call)
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> SharedCursor[Row]:
        conn = self.connection
        assert isinstance(conn, SharedConnection)
        async with conn.turns.hold():
            await super().execute(query, params, prepare=prepare, binary=binary)
        return self


class SharedConnection(psycopg.AsyncConnection[TupleRow]):
    """Open with ``SharedConnection.connect(..., cursor_factory=SharedCursor)``."""

    turns: Turns

    @asynccontextmanager
    async def transaction(
        self, savepoint_name: str | None = None, force_rollback: bool = False
    ) -> AsyncIterator[AsyncTransaction]:
        async with self.turns.hold(), super().transaction(savepoint_name, force_rollback) as tx:
            yield tx

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[AsyncPipeline]:
        """A pipeline holds the connection alone too: another task's statement sent into it
        would run inside its transaction (or be reported as its error)."""
        async with self.turns.hold(), super().pipeline() as pipe:
            yield pipe


async def open_shared(conninfo: str, *, autocommit: bool, **options: Any) -> SharedConnection:
    conn = await SharedConnection.connect(
        conninfo, autocommit=autocommit, cursor_factory=SharedCursor, **options
    )
    conn.turns = Turns()
    return conn
