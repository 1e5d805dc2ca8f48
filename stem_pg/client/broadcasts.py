"""Publishing to broadcast channels: every live subscriber of the channel runs the message once.

``app.broadcast(channel, task, kwargs)`` publishes directly; ``app.enqueue``
publishes when the routing file sends the task to a broadcast channel
(``target: {type: broadcast, name: ...}``). A publish is one message row plus
one fan-out row per live subscriber, written in one statement on the pool or
on the caller's connection (then it exists only if the caller commits).
Messages are planned by ``stem_pg.core.planning.Planner``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stem_pg.client.backend import Backend
from stem_pg.client.native import driver_connection
from stem_pg.client.results import TaskResult
from stem_pg.core.errors import TaskFailed
from stem_pg.core.planning import BroadcastSpec
from stem_pg.db.listen import wait_reconnecting
from stem_pg.db.stores.driver import async_driver_connection
from stem_pg.db.stores.publish import AsyncPublishStore, Delivery, Published, PublishStore

__all__ = ["BroadcastResult", "BroadcastSpec", "Delivery", "merge_results", "publish_async", "publish_sync"]

#: ``BroadcastResult.get()`` re-reads the deliveries at least this often, besides on notifications.
RECHECK = 1.0
_FINAL = ("succeeded", "failed", "cancelled")


class BroadcastResult(TaskResult):
    """The handle of a published message. ``subscribers`` is how many live workers it was
    fanned out to (None if this task id had been published before)."""

    def __init__(self, backend: Backend, task_id: str, *, channel: str, subscribers: int | None) -> None:
        super().__init__(backend, task_id)
        self.channel = channel
        self.subscribers = subscribers

    def __repr__(self) -> str:
        return f"<BroadcastResult {self.id} on {self.channel} to {self.subscribers} subscribers>"

    def deliveries(self) -> list[Delivery]:
        """Each subscriber's delivery of this message (the ``broadcast_deliveries`` view)."""
        with self.backend.pool.connection() as conn:
            return PublishStore(self.backend.queries).deliveries(conn, task_id=self.id)

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> dict[str, Any]:
        """Wait until every subscriber finished the message; returns worker id -> result.

        Raises TimeoutError after ``timeout`` seconds and, with ``propagate``,
        TaskFailed if a subscriber's run failed.
        """

        def finished() -> list[Delivery] | None:
            rows = self.deliveries()
            return rows if all(r.state in _FINAL for r in rows) else None

        pool = self.backend.pool
        rows = wait_reconnecting(
            lambda seconds: pool.connection(timeout=seconds),
            channel=self.backend.queries.channels.done,
            key=self.id,
            check=lambda _conn: finished(),
            timeout=timeout,
            late=f"broadcast {self.id} was not delivered to every subscriber in time",
            recheck=RECHECK,
            what=f"broadcast {self.id}",
            poll=self.backend.wait_poll,
        )
        return _outcome(self.id, rows, propagate=propagate)


def _outcome(task_id: str, rows: Sequence[Delivery], *, propagate: bool) -> dict[str, Any]:
    failed = [r for r in rows if r.state != "succeeded"]
    if failed and propagate:
        first = failed[0]
        raise TaskFailed(task_id, f"on worker {first.worker_id}: {first.state}: {first.error}")
    return {r.worker_id: r.result for r in rows}


def merge_results(
    backend: Backend, job_ids: Sequence[str], published: Mapping[int, TaskResult]
) -> list[TaskResult]:
    """Result handles in request order: published messages (and debounced jobs) where they
    were, the batch's jobs around them."""
    jobs = iter(job_ids)
    total = len(job_ids) + len(published)
    return [published[i] if i in published else TaskResult(backend, next(jobs)) for i in range(total)]


def publish_sync(
    backend: Backend, specs: Mapping[int, BroadcastSpec], connection: Any = None
) -> dict[int, BroadcastResult]:
    """Publish on the caller's connection (psycopg, SQLAlchemy or Django), else on the pool."""
    if not specs:
        return {}
    connection = driver_connection(connection)
    store = PublishStore(backend.queries)
    if connection is not None:
        return {i: _result(backend, s, store.publish(connection, spec=s)) for i, s in specs.items()}
    with backend.pool.connection() as conn:
        return {i: _result(backend, s, store.publish(conn, spec=s)) for i, s in specs.items()}


async def publish_async(
    backend: Backend, specs: Mapping[int, BroadcastSpec], connection: Any = None
) -> dict[int, BroadcastResult]:
    """The async twin of ``publish_sync`` (``connection``: a psycopg AsyncConnection, or a
    SQLAlchemy AsyncSession/AsyncConnection on psycopg)."""
    if not specs:
        return {}
    store = AsyncPublishStore(backend.queries)
    if connection is not None:
        connection = await async_driver_connection(connection)
        return {i: _result(backend, s, await store.publish(connection, spec=s)) for i, s in specs.items()}
    async with (await backend.apool()).connection() as conn:
        return {i: _result(backend, s, await store.publish(conn, spec=s)) for i, s in specs.items()}


def _result(backend: Backend, spec: BroadcastSpec, row: Published | None) -> BroadcastResult:
    subscribers = None if row is None else row.subscribers
    return BroadcastResult(backend, spec.task_id, channel=spec.channel, subscribers=subscribers)
