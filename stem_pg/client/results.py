"""Result handles: ``get()`` / ``wait()`` sleep on LISTEN/NOTIFY until the task finishes."""

from __future__ import annotations

from typing import Any, Generic, Literal, overload

import psycopg
from typing_extensions import TypeVar

from stem_pg.client.backend import Backend
from stem_pg.core.errors import ResultTimeout, StemError, TaskCancelled, TaskFailed
from stem_pg.db.listen import await_mention, await_reconnecting, wait_for_mention, wait_reconnecting
from stem_pg.db.stores.results import AsyncResultStore, ResultStore
from stem_pg.db.stores.rows import StoredResult, TaskStatus

# Moved to stem_pg.db.listen; importable from here until every waiter uses wait_until.
__all__ = ["TaskResult", "await_mention", "unwrap", "wait_for_mention"]

#: What ``get()`` returns: the handler's return type for ``Task.enqueue``'s handles, else Any.
R = TypeVar("R", default=Any)


class TaskResult(Generic[R]):
    """A handle on one task id; cheap to create, talks to the database only when asked.

    ``TaskResult[R]``: ``task.enqueue(...)`` of a handler returning ``R`` gives one whose
    ``get()`` is typed ``R``; ``app.enqueue(name, ...)`` cannot know, so its is ``Any``.
    """

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

    @property
    def progress(self) -> Any:
        """What the handler last reported with ``ctx.progress(...)`` while it runs (as JSON
        decodes it); None before the first report and once the task finished."""
        status = self.status()
        return status.progress if status else None

    @property
    def info(self) -> Any:
        """As Celery's ``AsyncResult.info``: the progress while the task is live, its value
        once it succeeded, the TaskFailed / TaskCancelled error (returned, not raised) once it
        failed or was cancelled; None for an unknown id."""
        status = self.status()
        if status is None or status.finished_at is None:
            return status.progress if status else None
        stored = self.result()
        if stored is None:  # pruned between the two reads
            return None
        try:
            return unwrap(stored, propagate=True)
        except (TaskFailed, TaskCancelled) as exc:
            return exc

    def result(self) -> StoredResult | None:
        """The stored outcome, or None while the task has not finished."""
        with self.backend.pool.connection() as conn:
            return ResultStore(self.backend.queries).result(conn, id=self.id)

    @overload
    def get(self, timeout: float | None = None, *, propagate: Literal[True] = True) -> R: ...
    @overload
    def get(self, timeout: float | None = None, *, propagate: bool) -> R | None: ...

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> R | None:
        """Block until the task finishes and return its value.

        A lost connection (a server restart, a terminated backend) does not end the
        wait: it takes a new one after a backoff, LISTENs again and re-reads, until
        ``timeout``. Raises TimeoutError after ``timeout`` seconds, TaskFailed /
        TaskCancelled (when ``propagate``) if it did not succeed. Tasks with
        ``ignore_result`` store nothing on success, so ``get()`` only returns for
        their failures. The timeout is a ResultTimeout (a TimeoutError) naming the task
        and the state it was in.
        """
        queries = self.backend.queries
        store = ResultStore(queries)
        pool = self.backend.pool
        try:
            stored = wait_reconnecting(
                lambda seconds: pool.connection(timeout=seconds),
                channel=queries.channels.done,
                key=self.id,
                check=lambda conn: store.result(conn, id=self.id),
                timeout=timeout,
                late=self._late,
                poll=self.backend.wait_poll,
                what=f"task {self.id}",
            )
        except TimeoutError as exc:
            raise self._timeout(exc, timeout) from exc.__cause__
        value: R | None = unwrap(stored, propagate=propagate)
        return value

    @overload
    async def wait(self, timeout: float | None = None, *, propagate: Literal[True] = True) -> R: ...
    @overload
    async def wait(self, timeout: float | None = None, *, propagate: bool) -> R | None: ...

    async def wait(self, timeout: float | None = None, *, propagate: bool = True) -> R | None:
        """The async twin of ``get()``."""
        queries = self.backend.queries
        store = AsyncResultStore(queries)
        pool = await self.backend.apool()
        try:
            stored = await await_reconnecting(
                lambda seconds: pool.connection(timeout=seconds),
                channel=queries.channels.done,
                key=self.id,
                check=lambda conn: store.result(conn, id=self.id),
                timeout=timeout,
                late=self._late,
                poll=self.backend.wait_poll,
                what=f"task {self.id}",
            )
        except TimeoutError as exc:
            state = None
            if exc.__cause__ is None:  # else that read would wait for the database too
                try:
                    async with pool.connection() as conn:
                        state = getattr(_live_first(await store.status(conn, ids=[self.id])), "state", None)
                except (StemError, OSError, psycopg.Error):
                    pass
            raise ResultTimeout(self.id, timeout or 0.0, state, _unreachable(exc)) from exc.__cause__
        value: R | None = unwrap(stored, propagate=propagate)
        return value

    def _timeout(self, exc: TimeoutError, timeout: float | None) -> ResultTimeout:
        """The timeout of a wait, with the task's state (not read when the database was
        unreachable: that read would wait for it too)."""
        state = None
        if exc.__cause__ is None:
            try:
                state = self.state
            except (StemError, OSError, psycopg.Error):
                state = None
        return ResultTimeout(self.id, timeout or 0.0, state, _unreachable(exc))

    @property
    def _late(self) -> str:
        return f"task {self.id} did not finish in time"


def _unreachable(exc: TimeoutError) -> str:
    """What the wait's own timeout said about an unreachable database, if it did."""
    text = str(exc)
    return text[text.index(" (the database") :] if " (the database" in text else ""


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
