"""The application object: task registry, routing, and the enqueue API."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

import psycopg

from stem_pg.client.broadcasts import BroadcastResult, merge_results, plan_broadcast, plan_routed
from stem_pg.client.broadcasts import publish_async as publish_broadcasts_async
from stem_pg.client.broadcasts import publish_sync as publish_broadcasts
from stem_pg.client.enqueue import (
    announced_by_insert,
    due_queues,
    insert_async,
    insert_planned_sync,
    insert_sync,
)
from stem_pg.client.results import TaskResult
from stem_pg.client.waker import Announce, Waker
from stem_pg.config.settings import StemConfig
from stem_pg.core.canvas import Canvas, Signature
from stem_pg.core.dsn import validate_url
from stem_pg.core.envelope import (
    JobSpec,
    check_moment,
    check_seconds,
    check_task_id,
    encode_json,
    encode_kwargs,
    new_task_id,
    split_expires,
    unique_key,
)
from stem_pg.core.errors import TaskError
from stem_pg.core.namespaces import validate_namespace
from stem_pg.core.routing import RoutingConfig
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.tasks import TaskDefinition, TaskOptions, TaskRegistry
from stem_pg.db.queries import Queries, queries_for, query_text

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from stem_pg.client.canvas import CanvasResult
    from stem_pg.client.locks import AsyncLock, Lock
    from stem_pg.client.schedules import Schedules
    from stem_pg.client.workflows import WorkflowDefinition, WorkflowRun
    from stem_pg.db.stores.control import RevokeOutcome

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_RESULT_TTL = 24 * 3600.0
Expires = datetime | timedelta | float | None


PLACEMENT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _Placement:
    queue: str
    priority: int
    max_retries: int
    visibility_timeout: int | None
    acks_late: bool
    unique: bool = False
    unique_for: float | None = None


@dataclass(frozen=True)
class EnqueueRequest:
    """One job for ``enqueue_many``; the fields mirror ``enqueue``'s arguments."""

    task: str
    kwargs: Mapping[str, Any] | None = None
    task_id: str | None = None
    countdown: float | timedelta | None = None
    eta: datetime | None = None
    expires: Expires = None
    priority: int | None = None
    queue: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


class Stem:
    """A stem_pg application: register tasks with ``@app.task`` and enqueue them.

    ``url`` defaults to STEM_BROKER_URL, ``namespace`` to STEM_NAMESPACE (then
    ``stem``), ``routing`` to the file named by STEM_ROUTING_CONFIG (then the
    legacy single-queue setup). Connection pools open on first use.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        routing: RoutingConfig | RoutingRegistry | str | None = None,
        config: StemConfig | None = None,
        result_ttl: float = DEFAULT_RESULT_TTL,
        pool_size: int = 10,
    ) -> None:
        self.config = config or StemConfig.from_environment()
        self._url = validate_url(url, source="url") if url else self.config.broker_url
        self.namespace = validate_namespace(namespace or self.config.namespace)
        self.routing = _routing_registry(routing, self.config)
        self.registry = TaskRegistry()
        self.workflows: dict[str, WorkflowDefinition] = {}
        self._placements: dict[tuple[object, ...], _Placement] = {}
        self.result_ttl = result_ttl
        self.pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()  # handler threads (app.lock) may open it at once
        self._async_pool: AsyncConnectionPool | None = None
        self._quiet: weakref.WeakSet[object] = weakref.WeakSet()
        self._waker: Waker | None = None
        self._async_pool_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            return self.config.require_broker_url()
        return self._url

    @property
    def queries(self) -> Queries:
        return queries_for(self.namespace)

    @property
    def default_max_retries(self) -> int:
        return self.config.default_max_retries

    # -- registration -------------------------------------------------------------

    @overload
    def task(self, fn: F, /) -> F: ...
    @overload
    def task(self, fn: None = None, /, *, name: str | None = None, **options: Any) -> Callable[[F], F]: ...

    def task(self, fn: F | None = None, /, *, name: str | None = None, **options: Any) -> Any:
        """Register a ``def`` or ``async def`` handler; options as in TaskOptions.

        The function stays callable as before and gains ``.enqueue(**kwargs)``,
        ``.aenqueue(**kwargs)`` and ``.task_name``.
        """

        def register(func: F) -> F:
            try:
                task_options = TaskOptions(**options)
            except TypeError as exc:
                raise TaskError(f"@app.task on {func.__qualname__}: {exc}") from None
            task_name = name or f"{func.__module__}.{func.__qualname__}"
            self.registry.register(TaskDefinition.build(task_name, func, task_options))
            self._placements.clear()
            func.task_name = task_name  # type: ignore[attr-defined]
            func.enqueue = functools.partial(self._enqueue_kwargs, task_name)  # type: ignore[attr-defined]
            func.aenqueue = functools.partial(self._aenqueue_kwargs, task_name)  # type: ignore[attr-defined]
            func.s = functools.partial(self.signature, task_name)  # type: ignore[attr-defined]
            func.si = functools.partial(self._immutable_signature, task_name)  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register

    @overload
    def workflow(self, fn: F, /) -> F: ...
    @overload
    def workflow(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        max_run_time: float | timedelta | str | None = None,
        max_suspended_time: float | timedelta | str | None = None,
        **options: Any,
    ) -> Callable[[F], F]: ...

    def workflow(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        max_run_time: float | timedelta | str | None = None,
        max_suspended_time: float | timedelta | str | None = None,
        **options: Any,
    ) -> Any:
        """Register an ``async def`` workflow taking ``(ctx: WorkflowContext, **params)``.

        ``max_run_time`` cancels a run that has not ended that long after it started,
        ``max_suspended_time`` one suspended that long at a time (seconds, timedelta or
        ``"5m"``). Other options (``queue``, ``priority``, ``max_retries``, ...) are the
        task options of the jobs that run it. The function gains ``.start(**params)``.
        """
        from stem_pg.client.workflows import WorkflowOptions, build_definition, seconds
        from stem_pg.worker.workflows import workflow_handler

        def register(func: F) -> F:
            wf_name = name or f"{func.__module__}.{func.__qualname__}"
            limits = WorkflowOptions(
                seconds(max_run_time, what=f"workflow {wf_name!r}: max_run_time"),
                seconds(max_suspended_time, what=f"workflow {wf_name!r}: max_suspended_time"),
            )
            definition = build_definition(wf_name, func, limits)
            self.task(name=wf_name, **options)(workflow_handler(self, definition))
            self.workflows[wf_name] = definition
            func.workflow_name = wf_name  # type: ignore[attr-defined]
            func.start = functools.partial(self._start_kwargs, wf_name)  # type: ignore[attr-defined]
            return func

        return register(fn) if fn is not None else register

    def _start_kwargs(self, workflow_name: str, /, **params: Any) -> WorkflowRun:
        return self.start_workflow(workflow_name, params)

    def _enqueue_kwargs(self, task_name: str, /, **kwargs: Any) -> TaskResult:
        return self.enqueue(task_name, kwargs)

    async def _aenqueue_kwargs(self, task_name: str, /, **kwargs: Any) -> TaskResult:
        return await self.aenqueue(task_name, kwargs)

    # -- enqueue ------------------------------------------------------------------

    def plan(self, request: EnqueueRequest) -> JobSpec:
        """Validate a request and resolve its route; raises TaskError / RoutingConfigError."""
        name = request.task
        if request.priority is not None and (
            isinstance(request.priority, bool) or not isinstance(request.priority, int)
        ):
            raise TaskError(f"{name}: priority must be an integer, got {request.priority!r}")
        headers = tuple(sorted((str(k), str(v)) for k, v in request.headers.items()))
        place = self._placement(name, request.queue, request.priority, headers)
        if request.eta is not None and request.countdown is not None:
            raise TaskError(f"{name}: give either eta or countdown, not both")
        expires_at, expires_in = split_expires(request.expires)
        args = encode_kwargs(name, request.kwargs)
        key = unique_key(name, place.queue, request.kwargs) if place.unique else None
        return JobSpec(
            id=check_task_id(request.task_id) if request.task_id is not None else new_task_id(),
            task=name,
            queue=place.queue,
            priority=place.priority,
            args=args,
            headers=encode_json(dict(request.headers), what=f"{name}: headers") if headers else "{}",
            max_retries=place.max_retries,
            eta=check_moment(request.eta, what="eta"),
            countdown=check_seconds(request.countdown, what="countdown"),
            expires_at=expires_at,
            expires_in=expires_in,
            visibility_timeout=place.visibility_timeout,
            acks_late=place.acks_late,
            id_given=request.task_id is not None,
            unique_key=key,
            unique_for=place.unique_for,
        )

    def _placement(
        self, name: str, queue: str | None, priority: int | None, headers: tuple[tuple[str, str], ...]
    ) -> _Placement:
        """Where and how a task goes, from routing and task options; cached per distinct input."""
        key = (name, queue, priority, headers)
        place = self._placements.get(key)
        if place is not None:
            return place
        if not isinstance(name, str) or not name:
            raise TaskError(f"task name must be a non-empty string, got {name!r}")
        definition = self.registry.get(name)
        options = definition.options if definition else TaskOptions()
        route = self.routing.resolve(
            name,
            queue=queue or options.queue,
            priority=priority if priority is not None else options.priority,
            headers=dict(headers),
        )
        if route.kind != "queue":
            raise TaskError(
                f"{name}: routed to broadcast channel {route.name!r}; plan() builds queue jobs only"
                " (app.enqueue and app.broadcast publish broadcast messages)"
            )
        vt = options.visibility_timeout
        place = _Placement(
            queue=route.name,
            priority=route.priority,
            max_retries=options.retry_policy(self.default_max_retries).max_retries,
            visibility_timeout=None if vt is None else max(1, round(vt)),
            acks_late=options.acks_late,
            unique=options.unique,
            unique_for=options.unique_for if isinstance(options.unique_for, float) else None,
        )
        if len(self._placements) < PLACEMENT_CACHE_SIZE:
            self._placements[key] = place
        return place

    def enqueue(
        self,
        name: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        expires: Expires = None,
        priority: int | None = None,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> TaskResult:
        """Enqueue one job and return its result handle.

        With ``connection`` (psycopg or SQLAlchemy connection/session) the job is
        written in the caller's transaction and exists only once it commits.
        A live job with the same ``task_id`` is left alone (idempotent). For a
        ``unique`` task, a live job with the same task, queue and arguments is
        returned instead of a new one.
        """
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}
        )
        return self.enqueue_many([request], connection=connection)[0]

    async def aenqueue(
        self,
        name: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str | None = None,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        expires: Expires = None,
        priority: int | None = None,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        connection: Any = None,
    ) -> TaskResult:
        """The async twin of ``enqueue`` (``connection``: a psycopg AsyncConnection)."""
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}
        )
        return (await self.aenqueue_many([request], connection=connection))[0]

    def enqueue_many(
        self,
        requests: Iterable[EnqueueRequest | tuple[str, Mapping[str, Any]]],
        *,
        connection: Any = None,
    ) -> list[TaskResult]:
        """Enqueue many jobs in one statement (one wake-up per queue); tasks routed to a
        broadcast channel are published there (their handles are BroadcastResults)."""
        items = [_request(r) for r in requests]
        routed = plan_routed(self, items)
        queued = [r for i, r in enumerate(items) if i not in routed]
        specs: list[JobSpec] = []
        planned = _recorded(map(self.plan, queued), specs)
        if connection is None:
            with self.waker.enqueueing() as how, self.pool.connection() as conn:
                announce = self.queries.channels.jobs if how is Announce.WITH_INSERT else None
                ids = insert_planned_sync(conn, self.queries, planned, len(queued), announce=announce)
                if not (announce and announced_by_insert(specs)):
                    try:  # the jobs are committed: a failed wake-up must not fail the enqueue
                        self.wake(specs, conn if how is not Announce.BY_WAKER else None)
                    except psycopg.Error:
                        self.wake(specs)
        else:
            if isinstance(connection, psycopg.Connection):
                ids = insert_planned_sync(connection, self.queries, planned, len(queued))
            else:
                ids = insert_sync(connection, self.queries, list(planned))
            self.wake(specs, connection)
        published = publish_broadcasts(self, routed, connection)
        return merge_results(self, ids, published)

    async def aenqueue_many(
        self,
        requests: Iterable[EnqueueRequest | tuple[str, Mapping[str, Any]]],
        *,
        connection: Any = None,
    ) -> list[TaskResult]:
        """The async twin of ``enqueue_many``."""
        items = [_request(r) for r in requests]
        routed = plan_routed(self, items)
        specs = [self.plan(r) for i, r in enumerate(items) if i not in routed]
        published = await publish_broadcasts_async(self, routed, connection)
        if connection is not None:
            ids = await insert_async(connection, self.queries, specs)
            await self.awake(specs, connection)
        else:
            with self.waker.enqueueing() as how:
                async with (await self.apool()).connection() as conn:
                    announce = self.queries.channels.jobs if how is Announce.WITH_INSERT else None
                    ids = await insert_async(conn, self.queries, specs, announce=announce)
                    if not (announce and announced_by_insert(specs)):
                        try:  # as in enqueue_many
                            await self.awake(specs, conn if how is not Announce.BY_WAKER else None)
                        except psycopg.Error:
                            await self.awake(specs)
        return merge_results(self, ids, published)

    # -- canvas and workflows (stem_pg.client.canvas, stem_pg.client.workflows) -------------------------

    def signature(self, name: str, /, **kwargs: Any) -> Signature:
        """A call of task ``name`` to make later (``task.s(**kwargs)`` is the same);
        enqueue options go through ``.set(queue=..., priority=..., countdown=...)``."""
        return Signature(name, kwargs, app=self)

    def _immutable_signature(self, name: str, /, **kwargs: Any) -> Signature:
        return Signature(name, kwargs, immutable=True, app=self)

    def apply(self, canvas: Canvas, *, connection: Any = None) -> CanvasResult:
        """Apply a chain, group or chord (``stem_pg.chain/group/chord``); see CanvasResult."""
        from stem_pg.client.canvas import apply_canvas

        return apply_canvas(self, canvas, connection)

    def start_workflow(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        connection: Any = None,
    ) -> WorkflowRun:
        """Start a run of workflow ``name``; an existing ``run_id`` is left alone (idempotent)."""
        from stem_pg.client.workflows import start_run

        return start_run(self, name, params, run_id=run_id, connection=connection)

    def workflow_run(self, run_id: str) -> WorkflowRun:
        """The handle of a run started earlier."""
        from stem_pg.client.workflows import WorkflowRun

        return WorkflowRun(self, check_task_id(run_id))

    def emit(self, topic: str, payload: Any = None) -> int:
        """Deliver an event to every run waiting on ``topic`` (``ctx.await_event``); returns how many."""
        from stem_pg.client.workflows import emit

        return emit(self, topic, payload)

    def cancel_workflow(self, run_id: str, reason: str | None = None) -> list[str]:
        """Cancel a run and its unfinished children; returns the run ids cancelled."""
        from stem_pg.client.workflows import cancel

        return cancel(self, run_id, reason)

    def rewind_workflow(self, run_id: str, step: str) -> int:
        """Run a run again from checkpoint ``step`` (dropped with every later one); returns how many."""
        from stem_pg.client.workflows import rewind

        return rewind(self, run_id, step)

    def result(self, task_id: str) -> TaskResult:
        """The result handle of a task id enqueued earlier."""
        return TaskResult(self, check_task_id(task_id))

    # -- broadcasts and revokes (stem_pg.client.broadcasts, stem_pg.client.control) -----------------

    def broadcast(
        self, channel: str, name: str, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> BroadcastResult:
        """Publish ``name(**kwargs)`` to every live subscriber of broadcast ``channel``.

        ``options``: ``task_id``, ``countdown``, ``eta``, ``expires``, ``headers``,
        ``connection`` as for ``enqueue``. Raises RoutingConfigError for a channel the
        routing file does not define, TaskError for bad arguments.
        """
        connection = options.pop("connection", None)
        options["headers"] = options.get("headers") or {}
        spec = plan_broadcast(self, EnqueueRequest(name, kwargs, **options), channel)
        return publish_broadcasts(self, {0: spec}, connection)[0]

    async def abroadcast(
        self, channel: str, name: str, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> BroadcastResult:
        """The async twin of ``broadcast``."""
        connection = options.pop("connection", None)
        options["headers"] = options.get("headers") or {}
        spec = plan_broadcast(self, EnqueueRequest(name, kwargs, **options), channel)
        return (await publish_broadcasts_async(self, {0: spec}, connection))[0]

    def revoke(
        self,
        task_id: str,
        *,
        terminate: bool = False,
        reason: str | None = None,
        expires_in: float | None = None,
    ) -> RevokeOutcome:
        """Revoke a task: if it waits it is cancelled now; if it runs it is never started
        again, and ``terminate`` stops it (async at once, sync at its next checkpoint).
        A finished task is left alone (``outcome == "finished"``). The revoke is kept
        for ``expires_in`` seconds (default a day) for workers that were offline.
        """
        from stem_pg.client.control import Control

        control = Control(self.url, self.namespace, result_ttl=self.result_ttl)
        done = control.revoke(
            [task_id], terminate=terminate, reason=reason, expires_in=expires_in, timeout=None
        )
        return done.revokes[0]

    # -- locks and schedules --------------------------------------------------------

    def lock(self, key: str, ttl: float | timedelta, owner: str | None = None, *, wait: float = 0.0) -> Lock:
        """A lock in this namespace's lock store: ``with app.lock("key", ttl=30): ...``.

        Entering acquires it (retrying for up to ``wait`` seconds) or raises
        LockNotAcquired; leaving releases it. It expires after ``ttl`` unless
        renewed (``lock.renew()``); ``lock.token`` is its fencing token.
        """
        from stem_pg.client.locks import Lock

        return Lock(self, key, ttl, owner, wait=wait)

    def alock(
        self, key: str, ttl: float | timedelta, owner: str | None = None, *, wait: float = 0.0
    ) -> AsyncLock:
        """The async twin of ``lock``: ``async with app.alock("key", ttl=30): ...``."""
        from stem_pg.client.locks import AsyncLock

        return AsyncLock(self, key, ttl, owner, wait=wait)

    @property
    def schedules(self) -> Schedules:
        """Beat's schedule store of this namespace: list, apply, enable, disable, delete."""
        from stem_pg.client.schedules import Schedules

        return Schedules(self.url, self.namespace)

    # -- connections --------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True, "application_name": "stem_pg:client"},
                    configure=self._quiet_inserts,
                    open=True,
                )
            return self._pool

    async def apool(self) -> AsyncConnectionPool:
        """The async pool, opened on first use (in the running event loop)."""
        if self._async_pool is None:
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True, "application_name": "stem_pg:client"},
                configure=self._aquiet_inserts,
                open=False,
            )
            await pool.open()
            self._async_pool = pool
            self._async_pool_loop = asyncio.get_running_loop()
        return self._async_pool

    def _quiet_inserts(self, conn: psycopg.Connection[Any]) -> None:
        """Pool connections insert without the trigger's NOTIFY; the waker sends it after commit."""
        conn.execute(query_text("client_notifies"))
        self._quiet.add(conn)

    async def _aquiet_inserts(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(query_text("client_notifies"))
        self._quiet.add(conn)

    @property
    def waker(self) -> Waker:
        """Sends the wake-ups of this application's committed inserts (stem_pg.client.waker)."""
        if self._waker is None:
            self._waker = Waker(self.url, self.queries)
        return self._waker

    def wake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """Announce inserted jobs: after a pool commit through the waker; inside a caller's
        transaction the insert trigger does it, unless that connection is one of our pool's."""
        params = self._announce(specs, connection)
        if params is not None:
            connection.execute(self.queries["job_wake"], params)

    async def awake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """The async twin of ``wake``."""
        params = self._announce(specs, connection)
        if params is not None:
            await connection.execute(self.queries["job_wake"], params)

    def _announce(self, specs: Iterable[JobSpec], connection: Any) -> dict[str, Any] | None:
        """Hand a pool commit's queues to the waker; the ``job_wake`` parameters when the
        caller's own transaction, on one of our pool connections, must send them itself."""
        queues = due_queues(specs)
        if not queues:
            return None
        if connection is None:
            self.waker.request(queues)
            return None
        if connection in self._quiet:
            return {"channel": self.queries.channels.jobs, "queues": sorted(queues)}
        return None

    def close(self) -> None:
        """Close the synchronous pool (use ``aclose`` for the async one)."""
        if self._waker is not None:
            self._waker.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def close_async_pool(self) -> None:
        """Close the async pool if this event loop opened it (a pool belongs to its loop;
        a worker closes the one its handlers opened, not one its host program uses)."""
        if self._async_pool is not None and self._async_pool_loop is asyncio.get_running_loop():
            await self._async_pool.close()
            self._async_pool = None

    async def aclose(self) -> None:
        await self.close_async_pool()
        self.close()


def _recorded(specs: Iterable[JobSpec], into: list[JobSpec]) -> Iterator[JobSpec]:
    """Pass ``specs`` through, keeping each in ``into`` (for the wake-up after the insert)."""
    for spec in specs:
        into.append(spec)
        yield spec


def _request(item: EnqueueRequest | tuple[str, Mapping[str, Any]]) -> EnqueueRequest:
    if isinstance(item, EnqueueRequest):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return EnqueueRequest(item[0], item[1])
    raise TaskError(f"enqueue_many takes EnqueueRequest or (task, kwargs) items, got {item!r}")


def _routing_registry(
    routing: RoutingConfig | RoutingRegistry | str | None, config: StemConfig
) -> RoutingRegistry:
    if isinstance(routing, RoutingRegistry):
        return routing
    if isinstance(routing, RoutingConfig):
        return RoutingRegistry(routing)
    from stem_pg.config.routing_file import load_routing

    path = routing if routing is not None else config.routing_config
    if path is None:
        return RoutingRegistry(RoutingConfig.legacy(config.default_queue))
    return RoutingRegistry(load_routing(path))
