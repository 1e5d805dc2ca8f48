"""The application object: a thin facade that registers tasks and composes the client features.

``Stem`` owns the task registry and the routing (through a ``Planner``) and one
``Backend`` (URL, namespace, pools, wake-ups); each feature (enqueue, results,
broadcasts, canvas, locks, schedules, control) receives those, never the facade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stem_pg.client import enqueue as enqueueing
from stem_pg.client.app_runtime import RuntimeFacade
from stem_pg.client.backend import DEFAULT_RESULT_TTL, Backend, BackendFacade
from stem_pg.client.broadcasts import BroadcastResult, publish_async, publish_sync
from stem_pg.client.canvas import CanvasResult, apply_canvas
from stem_pg.client.control import Control
from stem_pg.client.enqueue_one import enqueue_one
from stem_pg.client.locks import AsyncLock, Lock
from stem_pg.client.results import TaskResult
from stem_pg.client.schedules import Schedules
from stem_pg.client.tasks import TaskDecorator, WorkflowDecorator
from stem_pg.client.testing import TestingAccess
from stem_pg.config.settings import StemConfig
from stem_pg.core.canvas import Canvas, Signature
from stem_pg.core.dsn import validate_url
from stem_pg.core.envelope import JobSpec, check_task_id
from stem_pg.core.planning import EnqueueRequest, Expires, Planner
from stem_pg.core.routing import RoutingConfig
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.signals import Middleware, Signals, check_middleware
from stem_pg.core.signing import Signing
from stem_pg.core.tasks import TaskRegistry

if TYPE_CHECKING:
    from stem_pg.client.workflows import WorkflowDefinition, WorkflowRun
    from stem_pg.db.stores.control import RevokeOutcome

__all__ = ["DEFAULT_RESULT_TTL", "EnqueueRequest", "Expires", "Stem"]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Middleware)
Request = EnqueueRequest | tuple[str, Mapping[str, Any]]


class Stem(BackendFacade, RuntimeFacade, TestingAccess):
    """A stem_pg application: register tasks with ``@app.task`` and enqueue them.

    STEM_BROKER_URL, when set, wins over ``url`` and STEM_NAMESPACE over ``namespace``
    (as CELERY_BROKER_URL over a Celery app's broker: one deployment runs one app in
    several places); without either, ``namespace`` defaults to ``stem``. ``routing``
    defaults to the file named by STEM_ROUTING_CONFIG (then the legacy single-queue setup),
    ``max_payload_bytes`` (the longest JSON a job's kwargs or headers may have) to
    STEM_MAX_PAYLOAD_BYTES (then 1 MiB). ``signing``
    (a ``Signing``, or ``{key id: key}`` with one key that can sign) defaults to
    STEM_SIGNING_KEYS / STEM_SIGNING_ACTIVE_KEY: jobs are signed when enqueued and
    verified before they run. ``direct_url`` (STEM_DIRECT_URL wins): straight to Postgres,
    for LISTEN behind a transaction pooler (README, Deployment). Pools open on first use.
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
        max_payload_bytes: int | None = None,
        signing: Signing | Mapping[str, str] | None = None,
        direct_url: str | None = None,
    ) -> None:
        self.config = config or StemConfig.from_environment()
        if max_payload_bytes is None:
            max_payload_bytes = self.config.max_payload_bytes
        given = validate_url(url, source="url") if url else None
        self.backend = Backend(
            self.config.broker_url or given or self.config.require_broker_url,
            self.config.namespace_for(app=namespace),
            result_ttl=result_ttl,
            pool_size=pool_size,
            direct_url=self.config.direct_url or direct_url,
        )
        self.planner = Planner(
            TaskRegistry(),
            _routing_registry(routing, self.config),
            default_max_retries=self.config.default_max_retries,
            max_payload_bytes=max_payload_bytes,
            signing=_signing(signing, self.config),
        )
        self.workflows: dict[str, WorkflowDefinition] = {}
        #: What ``@app.middleware`` registered, outermost first (the worker runs each task in it).
        self.middleware_chain: list[Middleware] = []

    # -- the planner's (url, namespace, pool, wake... are the backend's: BackendFacade) ---------

    @property
    def registry(self) -> TaskRegistry:
        return self.planner.registry

    @registry.setter
    def registry(self, registry: TaskRegistry) -> None:
        self.planner.registry = registry

    @property
    def routing(self) -> RoutingRegistry:
        return self.planner.routing

    @routing.setter
    def routing(self, routing: RoutingRegistry) -> None:
        self.planner.routing = routing

    @property
    def default_max_retries(self) -> int:
        return self.planner.default_max_retries

    # -- hooks (stem_pg.core.signals) ---------------------------------------------

    @property
    def signals(self) -> Signals:
        """This app's signals: ``app.signals.task_failed.connect(receiver)``."""
        return self.backend.signals

    def on(self, name: str) -> Callable[[F], F]:
        """Connect the decorated receiver to signal ``name``; raises KeyError for an unknown one."""
        signal = self.signals[name]

        def connect(fn: F) -> F:
            signal.connect(fn)
            return fn

        return connect

    def middleware(self, fn: M) -> M:
        """Register ``async def fn(ctx: TaskInfo, call_next)`` to wrap every task run (sync and
        async handlers), after those registered before it; raises TypeError for a sync function."""
        self.middleware_chain.append(check_middleware(fn))
        return fn

    # -- registration -------------------------------------------------------------

    @property
    def task(self) -> TaskDecorator:
        """``@app.task`` / ``@app.task(name=..., **options)``: register a handler (stem_pg.client.tasks)."""
        return TaskDecorator(self)

    @property
    def workflow(self) -> WorkflowDecorator:
        """``@app.workflow`` / ``@app.workflow(name=..., **options)``: register a workflow
        (stem_pg.client.tasks)."""
        return WorkflowDecorator(self)

    # -- enqueue (stem_pg.client.enqueue) --------------------------------------------

    def plan(self, request: EnqueueRequest) -> JobSpec:
        """Validate a request and resolve its route; raises TaskError / RoutingConfigError."""
        return self.planner.plan(request)

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
        debounce: float | timedelta | str | None = None,
        key: str | None = None,
    ) -> TaskResult:
        """Enqueue one job and return its result handle.

        With ``connection`` (psycopg or SQLAlchemy connection/session) the job is
        written in the caller's transaction and exists only once it commits.
        A live job with the same ``task_id`` is left alone (idempotent). For a
        ``unique`` task, a live job with the same task, queue and arguments is
        returned instead of a new one. With ``debounce="5s"`` and a ``key``, the job runs
        5 s from now, and a later call with the same task and key before a worker takes it
        replaces it (the last arguments run, once): ``stem_pg.client.debounce``.
        """
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}, debounce, key
        )
        if connection is None:
            return enqueue_one(self.backend, self.planner, request)
        return enqueueing.enqueue_many(
            self.backend, self.planner, [request], connection=connection, numbered=False
        )[0]

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
        debounce: float | timedelta | str | None = None,
        key: str | None = None,
    ) -> TaskResult:
        """The async twin of ``enqueue`` (``connection``: a psycopg AsyncConnection)."""
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}, debounce, key
        )
        handles = await enqueueing.aenqueue_many(
            self.backend, self.planner, [request], connection=connection, numbered=False
        )
        return handles[0]

    def enqueue_many(self, requests: Iterable[Request], *, connection: Any = None) -> list[TaskResult]:
        """Enqueue many jobs in one statement (one wake-up per queue); tasks routed to a
        broadcast channel are published there, after the jobs (their handles are BroadcastResults).
        A debounced request (``EnqueueRequest(..., debounce="5s", key=...)``) replaces its key's
        waiting job in a transaction of its own, after the batch's insert."""
        return enqueueing.enqueue_many(self.backend, self.planner, requests, connection=connection)

    async def aenqueue_many(self, requests: Iterable[Request], *, connection: Any = None) -> list[TaskResult]:
        """The async twin of ``enqueue_many``."""
        return await enqueueing.aenqueue_many(self.backend, self.planner, requests, connection=connection)

    def result(self, task_id: str) -> TaskResult:
        """The result handle of a task id enqueued earlier."""
        return TaskResult(self.backend, check_task_id(task_id))

    # -- canvas and workflows (stem_pg.client.canvas, stem_pg.client.workflows) -------------------------

    def signature(self, name: str, /, **kwargs: Any) -> Signature:
        """A call of task ``name`` to make later (``task.s(**kwargs)`` is the same);
        enqueue options go through ``.set(queue=..., priority=..., countdown=...)``."""
        return Signature(name, kwargs, app=self)

    def apply(self, canvas: Canvas, *, connection: Any = None) -> CanvasResult:
        """Apply a chain, group or chord (``stem_pg.chain/group/chord``); see CanvasResult."""
        return apply_canvas(self.backend, self.planner, canvas, connection)

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

        return start_run(
            self.backend, self.planner, self.workflows, name, params, run_id=run_id, connection=connection
        )

    def workflow_run(self, run_id: str) -> WorkflowRun:
        """The handle of a run started earlier."""
        from stem_pg.client.workflows import WorkflowRun

        return WorkflowRun(self.backend, check_task_id(run_id, what="run_id"))

    def emit(self, topic: str, payload: Any = None) -> int:
        """Deliver an event to every run waiting on ``topic`` (``ctx.await_event``); returns how many."""
        from stem_pg.client.workflows import emit

        return emit(self.backend, topic, payload, max_bytes=self.planner.max_payload_bytes)

    def cancel_workflow(self, run_id: str, reason: str | None = None) -> list[str]:
        """Cancel a run and its unfinished children; returns the run ids cancelled."""
        from stem_pg.client.workflows import cancel

        return cancel(self.backend, run_id, reason)

    def rewind_workflow(self, run_id: str, step: str) -> int:
        """Run a run again from checkpoint ``step`` (dropped with every later one); returns how many."""
        from stem_pg.client.workflows import rewind

        return rewind(self.backend, run_id, step)

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
        spec = self.planner.plan_broadcast(EnqueueRequest(name, kwargs, **options), channel)
        return publish_sync(self.backend, {0: spec}, connection)[0]

    async def abroadcast(
        self, channel: str, name: str, kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> BroadcastResult:
        """The async twin of ``broadcast``."""
        connection = options.pop("connection", None)
        options["headers"] = options.get("headers") or {}
        spec = self.planner.plan_broadcast(EnqueueRequest(name, kwargs, **options), channel)
        return (await publish_async(self.backend, {0: spec}, connection))[0]

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
        control = Control.of(self.backend)
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
        return Lock(self.backend, key, ttl, owner, wait=wait)

    def alock(
        self, key: str, ttl: float | timedelta, owner: str | None = None, *, wait: float = 0.0
    ) -> AsyncLock:
        """The async twin of ``lock``: ``async with app.alock("key", ttl=30): ...``."""
        return AsyncLock(self.backend, key, ttl, owner, wait=wait)

    @property
    def schedules(self) -> Schedules:
        """Beat's schedule store of this namespace: list, apply, enable, disable, delete."""
        return Schedules.of(self.backend)


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


def _signing(signing: Signing | Mapping[str, str] | None, config: StemConfig) -> Signing | None:
    """``Stem(signing=...)``: a Signing, ``{key id: key}``, or None for the environment's."""
    if isinstance(signing, Mapping):
        return Signing.from_spec(signing)
    return signing if signing is not None else config.signing
