"""Result handles: ``get()`` / ``wait()`` sleep on LISTEN/NOTIFY until the task finishes."""

from __future__ import annotations

from typing import Any

from stem_pg.client.backend import Backend
from stem_pg.core.errors import TaskCancelled, TaskFailed
from stem_pg.db.listen import await_mention, await_reconnecting, wait_for_mention, wait_reconnecting
from stem_pg.db.stores.results import AsyncResultStore, ResultStore
from stem_pg.db.stores.rows import StoredResult, TaskStatus

# Moved to stem_pg.db.listen; importable from here until every waiter uses wait_until.
__all__ = ["TaskResult", "await_mention", "unwrap", "wait_for_mention"]


class TaskResult:
    """A handle on one task id; cheap to create, talks to the database only when asked."""

    def __init__(self, backend: Backend, task_id: str) -> None:
        self.backend = backend
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskResult {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskResult) and other.id == self.id and other.backend is self.backend

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> TaskStatus | None:
        """The task's current row of the ``task_states`` view, or None if unknown."""
        with self.backend.pool.connection() as conn:
            rows = ResultStore(self.backend.queries).status(conn, ids=[self.id])
        return _live_first(rows)

    @property
    def state(self) -> str | None:
        status = self.status()
        return status.state if status else None

    def result(self) -> StoredResult | None:
        """The stored outcome, or None while the task has not finished."""
        with self.backend.pool.connection() as conn:
            return ResultStore(self.backend.queries).result(conn, id=self.id)

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """Block until the task finishes and return its value.

        A lost connection (a server restart, a terminated backend) does not end the
        wait: it takes a new one after a backoff, LISTENs again and re-reads, until
        ``timeout``. Raises TimeoutError after ``timeout`` seconds, TaskFailed /
        TaskCancelled (when ``propagate``) if it did not succeed. Tasks with
        ``ignore_result`` store nothing on success, so ``get()`` only returns for
        their failures.
        """
        queries = self.backend.queries
        store = ResultStore(queries)
        pool = self.backend.pool
        stored = wait_reconnecting(
            lambda seconds: pool.connection(timeout=seconds),
            channel=queries.channels.done,
            key=self.id,
            check=lambda conn: store.result(conn, id=self.id),
            timeout=timeout,
            late=self._late,
            what=f"task {self.id}",
        )
        return unwrap(stored, propagate=propagate)

    async def wait(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """The async twin of ``get()``."""
        queries = self.backend.queries
        store = AsyncResultStore(queries)
        pool = await self.backend.apool()
        stored = await await_reconnecting(
            lambda seconds: pool.connection(timeout=seconds),
            channel=queries.channels.done,
            key=self.id,
            check=lambda conn: store.result(conn, id=self.id),
            timeout=timeout,
            late=self._late,
            what=f"task {self.id}",
        )
        return unwrap(stored, propagate=propagate)

    @property
    def _late(self) -> str:
        return f"task {self.id} did not finish in time"


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
