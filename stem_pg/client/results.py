"""Result handles: ``get()`` / ``wait()`` sleep on LISTEN/NOTIFY until the task finishes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row
from psycopg.sql import SQL, Identifier

from stem_pg.core.errors import TaskCancelled, TaskFailed
from stem_pg.db.stores.rows import StoredResult, TaskStatus

if TYPE_CHECKING:
    from stem_pg.client.app import Stem


class TaskResult:
    """A handle on one task id; cheap to create, talks to the database only when asked."""

    def __init__(self, app: Stem, task_id: str) -> None:
        self.app = app
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskResult) and other.id == self.id and other.app is self.app

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> TaskStatus | None:
        """The task's current row of the ``task_states`` view, or None if unknown."""
        with (
            self.app.pool.connection() as conn,
            conn.cursor(row_factory=class_row(TaskStatus)) as cur,
        ):
            cur.execute(self.app.queries["task_status"], {"ids": [self.id]})
            rows = cur.fetchall()
        return _live_first(rows)

    @property
    def state(self) -> str | None:
        status = self.status()
        return status.state if status else None

    def result(self) -> StoredResult | None:
        """The stored outcome, or None while the task has not finished."""
        with (
            self.app.pool.connection() as conn,
            conn.cursor(row_factory=class_row(StoredResult)) as cur,
        ):
            cur.execute(self.app.queries["task_result"], {"id": self.id})
            return cur.fetchone()

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Block until the task finishes and return its value.

        Raises TimeoutError after ``timeout`` seconds, TaskFailed / TaskCancelled
        (when ``propagate``) if it did not succeed. Tasks with ``ignore_result``
        store nothing on success, so ``get()`` only returns for their failures.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = Identifier(self.app.queries.channels.done)
        with self.app.pool.connection() as conn:
            conn.execute(SQL("LISTEN {}").format(channel))
            try:
                while True:
                    with conn.cursor(row_factory=class_row(StoredResult)) as cur:
                        cur.execute(self.app.queries["task_result"], {"id": self.id})
                        stored = cur.fetchone()
                    if stored is not None:
                        return unwrap(stored, propagate=propagate)
                    wait_for_mention(conn, self.id, deadline, late=f"task {self.id} did not finish in time")
            finally:
                conn.execute(SQL("UNLISTEN {}").format(channel))

    async def wait(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """The async twin of ``get()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = Identifier(self.app.queries.channels.done)
        async with (await self.app.apool()).connection() as conn:
            await conn.execute(SQL("LISTEN {}").format(channel))
            try:
                while True:
                    async with conn.cursor(row_factory=class_row(StoredResult)) as cur:
                        await cur.execute(self.app.queries["task_result"], {"id": self.id})
                        stored = await cur.fetchone()
                    if stored is not None:
                        return unwrap(stored, propagate=propagate)
                    await await_mention(
                        conn, self.id, deadline, late=f"task {self.id} did not finish in time"
                    )
            finally:
                await conn.execute(SQL("UNLISTEN {}").format(channel))


def wait_for_mention(
    conn: Any, key: str, deadline: float | None, *, late: str, recheck: float | None = None
) -> None:
    """Sleep on the done channel (LISTENed on ``conn``) until a notification names ``key``
    (or says ``*``), ``recheck`` seconds pass, or the deadline: then TimeoutError(``late``)."""
    for note in conn.notifies(timeout=_patience(deadline, late, recheck)):
        if note.payload == "*" or key in note.payload.split(","):
            return


async def await_mention(
    conn: Any, key: str, deadline: float | None, *, late: str, recheck: float | None = None
) -> None:
    """The async twin of ``wait_for_mention``."""
    async for note in conn.notifies(timeout=_patience(deadline, late, recheck)):
        if note.payload == "*" or key in note.payload.split(","):
            return


def _patience(deadline: float | None, late: str, recheck: float | None) -> float | None:
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise TimeoutError(late)
    if recheck is None:
        return remaining
    return recheck if remaining is None else min(remaining, recheck)


def unwrap(stored: StoredResult, *, propagate: bool) -> Any:
    """The value of a finished task, or its failure raised."""
    if stored.state == "succeeded" or not propagate:
        return stored.result
    if stored.state == "cancelled":
        raise TaskCancelled(f"task {stored.id} was cancelled: {stored.error}")
    raise TaskFailed(stored.id, stored.error, stored.traceback)


def _live_first(rows: list[TaskStatus]) -> TaskStatus | None:
    live = [r for r in rows if r.finished_at is None]
    found = live or rows
    return found[0] if found else None
