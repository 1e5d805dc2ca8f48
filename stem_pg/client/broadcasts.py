"""Publishing to broadcast channels: every live subscriber of the channel runs the message once.

``app.broadcast(channel, task, kwargs)`` publishes directly; ``app.enqueue``
publishes when the routing file sends the task to a broadcast channel
(``target: {type: broadcast, name: ...}``). A publish is one message row plus
one fan-out row per live subscriber, written in one statement on the pool or
on the caller's connection (then it exists only if the caller commits).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import TupleRow, class_row
from psycopg.sql import SQL, Identifier

from stem_pg.client.results import TaskResult
from stem_pg.core.control import is_durable
from stem_pg.core.envelope import (
    check_moment,
    check_seconds,
    check_task_id,
    encode_json,
    encode_kwargs,
    new_task_id,
    split_expires,
)
from stem_pg.core.errors import TaskError, TaskFailed
from stem_pg.core.routing_registry import ResolvedRoute
from stem_pg.core.tasks import TaskOptions
from stem_pg.db.queries import Queries
from stem_pg.db.stores.broadcasts import SUBSCRIBER_LIVE_FOR

if TYPE_CHECKING:
    from stem_pg.client.app import EnqueueRequest, Stem


@dataclass(frozen=True)
class Delivery:
    """One row of the ``broadcast_deliveries`` view: a message as one subscriber handled it."""

    message_id: int
    task_id: str
    channel: str
    task: str
    delivery: str
    worker_id: str
    state: str
    attempts: int
    published_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    result: Any


@dataclass(frozen=True)
class BroadcastSpec:
    """One message, validated and ready to publish."""

    task_id: str
    channel: str
    task: str
    args: str
    headers: str
    delivery: str
    durable: bool
    max_retries: int
    eta: datetime | None
    countdown: float | None
    expires_at: datetime | None
    expires_in: float | None

    def params(self, queries: Queries) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "channel": self.channel,
            "task": self.task,
            "args": self.args,
            "headers": self.headers,
            "delivery": self.delivery,
            "durable": self.durable,
            "max_retries": self.max_retries,
            "eta": self.eta,
            "countdown": self.countdown,
            "expires_at": self.expires_at,
            "expires_in": self.expires_in,
            "live_for": SUBSCRIBER_LIVE_FOR,
            "wake_channel": queries.channels.broadcasts,
        }


class BroadcastResult(TaskResult):
    """The handle of a published message. ``subscribers`` is how many live workers it was
    fanned out to (None if this task id had been published before)."""

    def __init__(self, app: Stem, task_id: str, *, channel: str, subscribers: int | None) -> None:
        super().__init__(app, task_id)
        self.channel = channel
        self.subscribers = subscribers

    def __repr__(self) -> str:
        return f"<BroadcastResult {self.id} on {self.channel} to {self.subscribers} subscribers>"

    def deliveries(self) -> list[Delivery]:
        """Each subscriber's delivery of this message (the ``broadcast_deliveries`` view)."""
        with self.app.pool.connection() as conn, conn.cursor(row_factory=class_row(Delivery)) as cur:
            cur.execute(self.app.queries["broadcast_deliveries_of"], {"task_id": self.id})
            return cur.fetchall()

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> dict[str, Any]:
        """Wait until every subscriber finished the message; returns worker id -> result.

        Raises TimeoutError after ``timeout`` seconds and, with ``propagate``,
        TaskFailed if a subscriber's run failed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = Identifier(self.app.queries.channels.done)
        with self.app.pool.connection() as conn:
            conn.execute(SQL("LISTEN {}").format(channel))
            try:
                while True:
                    rows = self.deliveries()
                    if all(r.state in ("succeeded", "failed", "cancelled") for r in rows):
                        return _outcome(self.id, rows, propagate=propagate)
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f"broadcast {self.id} was not delivered to every subscriber in time"
                        )
                    wait = 1.0 if remaining is None else min(1.0, remaining)
                    for _ in conn.notifies(timeout=wait, stop_after=1):
                        pass
            finally:
                conn.execute(SQL("UNLISTEN {}").format(channel))


def _outcome(task_id: str, rows: Sequence[Delivery], *, propagate: bool) -> dict[str, Any]:
    failed = [r for r in rows if r.state != "succeeded"]
    if failed and propagate:
        first = failed[0]
        raise TaskFailed(task_id, f"on worker {first.worker_id}: {first.state}: {first.error}")
    return {r.worker_id: r.result for r in rows}


# -- planning ----------------------------------------------------------------------------


def broadcast_route(app: Stem, request: EnqueueRequest) -> ResolvedRoute | None:
    """The broadcast route of an enqueue request, or None when it goes to a queue."""
    if not app.routing.config.broadcasts:
        return None
    definition = app.registry.get(request.task)
    options = definition.options if definition else TaskOptions()
    queue = request.queue or options.queue
    if queue is not None or not isinstance(request.task, str):
        return None
    headers = {str(k): str(v) for k, v in request.headers.items()}
    route = app.routing.resolve(request.task, headers=headers)
    return route if route.kind == "broadcast" else None


def plan_broadcast(app: Stem, request: EnqueueRequest, channel: str) -> BroadcastSpec:
    """Validate one message for ``channel``; raises TaskError / RoutingConfigError."""
    name = request.task
    if not isinstance(name, str) or not name:
        raise TaskError(f"task name must be a non-empty string, got {name!r}")
    definition = app.routing.broadcast(channel)
    task = app.registry.get(name)
    options = task.options if task else TaskOptions()
    if request.eta is not None and request.countdown is not None:
        raise TaskError(f"{name}: give either eta or countdown, not both")
    expires_at, expires_in = split_expires(request.expires)
    return BroadcastSpec(
        task_id=check_task_id(request.task_id) if request.task_id is not None else new_task_id(),
        channel=definition.name,
        task=name,
        args=encode_kwargs(name, request.kwargs),
        headers=encode_json(dict(request.headers), what=f"{name}: headers") if request.headers else "{}",
        delivery=definition.delivery,
        durable=is_durable(definition.durability),
        max_retries=options.retry_policy(app.default_max_retries).max_retries,
        eta=check_moment(request.eta, what="eta"),
        countdown=check_seconds(request.countdown, what="countdown"),
        expires_at=expires_at,
        expires_in=expires_in,
    )


def plan_routed(app: Stem, requests: Sequence[EnqueueRequest]) -> dict[int, BroadcastSpec]:
    """The broadcast messages among enqueue requests, by position (empty without broadcast routes)."""
    planned = {}
    for index, request in enumerate(requests):
        route = broadcast_route(app, request)
        if route is not None:
            planned[index] = plan_broadcast(app, request, route.name)
    return planned


def merge_results(
    app: Stem, job_ids: Sequence[str], published: Mapping[int, BroadcastResult]
) -> list[TaskResult]:
    """Result handles in request order: published messages where they were, jobs around them."""
    jobs = iter(job_ids)
    total = len(job_ids) + len(published)
    return [published[i] if i in published else TaskResult(app, next(jobs)) for i in range(total)]


# -- publishing --------------------------------------------------------------------------


def publish_sync(
    app: Stem, specs: Mapping[int, BroadcastSpec], connection: Any = None
) -> dict[int, BroadcastResult]:
    """Publish on the caller's connection (psycopg or SQLAlchemy), else on the pool."""
    if not specs:
        return {}
    if connection is not None:
        return {i: _publish_on(app, connection, spec) for i, spec in specs.items()}
    with app.pool.connection() as conn:
        return {i: _publish_on(app, conn, spec) for i, spec in specs.items()}


async def publish_async(
    app: Stem, specs: Mapping[int, BroadcastSpec], connection: Any = None
) -> dict[int, BroadcastResult]:
    """The async twin of ``publish_sync`` (``connection``: a psycopg AsyncConnection)."""
    if not specs:
        return {}
    if connection is not None:
        return {i: await _apublish_on(app, connection, spec) for i, spec in specs.items()}
    async with (await app.apool()).connection() as conn:
        return {i: await _apublish_on(app, conn, spec) for i, spec in specs.items()}


def _publish_on(app: Stem, conn: Any, spec: BroadcastSpec) -> BroadcastResult:
    query, params = app.queries["broadcast_publish"], spec.params(app.queries)
    if isinstance(conn, psycopg.Connection):
        row = conn.execute(query, params).fetchone()
    else:
        row = _sqlalchemy_connection(conn).exec_driver_sql(query, params).fetchone()
    return _result(app, spec, row)


async def _apublish_on(app: Stem, conn: Any, spec: BroadcastSpec) -> BroadcastResult:
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TaskError(f"connection must be a psycopg.AsyncConnection, got {type(conn).__name__}")
    cur = await conn.execute(app.queries["broadcast_publish"], spec.params(app.queries))
    return _result(app, spec, await cur.fetchone())


def _result(app: Stem, spec: BroadcastSpec, row: Sequence[Any] | TupleRow | None) -> BroadcastResult:
    subscribers = None if row is None else int(row[1])
    return BroadcastResult(app, spec.task_id, channel=spec.channel, subscribers=subscribers)


def _sqlalchemy_connection(conn: Any) -> Any:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    if isinstance(conn, Session):
        return conn.connection()
    if isinstance(conn, Connection):
        return conn
    raise TaskError(
        "connection must be a psycopg Connection or a SQLAlchemy Connection/Session,"
        f" got {type(conn).__name__}"
    )
