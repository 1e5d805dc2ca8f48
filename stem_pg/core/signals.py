"""Signals (hooks on what happens to jobs, workers and schedules) and the handler middleware
chain: a registry of receivers with typed payloads, no I/O.

A signal with no receiver costs one truth test: the senders check ``if signal:``
before they build a payload. A receiver's exception is logged in one line (the
receiver and the error) and never reaches the job, the enqueue or the worker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from stem_pg.core.envelope import JobSpec

log = logging.getLogger(__name__)

P = TypeVar("P")
Receiver = Callable[[P], object]


@dataclass(frozen=True, slots=True)
class PublishInfo:
    """before_publish / after_publish: a job being (or just) written to its queue.
    ``task_id`` after the publish is the id that holds the job (a unique task's existing one)."""

    task: str
    task_id: str
    queue: str
    priority: int


def publish_info(spec: JobSpec, task_id: str | None = None) -> PublishInfo:
    """The publish signals' payload for ``spec`` (held by ``task_id``, if not its own)."""
    return PublishInfo(spec.task, task_id or spec.id, spec.queue, spec.priority)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A job the worker holds: the task signals' payload and the middleware's context."""

    task: str
    task_id: str
    queue: str
    attempt: int
    worker_id: str
    args: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """task_succeeded / failed / retried / dead_lettered / revoked: how an attempt ended.
    ``result`` is the JSON text of the return value; ``error`` the failure or the revoke's
    reason; ``retry_in`` the seconds until a retry; ``dead_reason`` why it was dead-lettered."""

    info: TaskInfo
    state: str
    result: str | None = None
    error: str | None = None
    retry_in: float | None = None
    dead_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """worker_started / worker_stopping / worker_stopped."""

    worker_id: str
    namespace: str
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BeatFired:
    """beat_fired: a schedule entry fired and enqueued ``task_id`` for ``fire_time``."""

    schedule: str
    task: str | None
    task_id: str | None
    fire_time: datetime


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """workflow_started / resumed / suspended / ended: one job of a run. ``resumes`` counts
    the suspensions before this job; ``result`` is the function's return value (ended)."""

    workflow: str
    run_id: str
    task_id: str
    resumes: int
    params: Mapping[str, Any] = field(default_factory=dict)
    result: Any = None


@dataclass(frozen=True, slots=True)
class ControlInfo:
    """control_command_received: a worker is about to act on a control command."""

    command: str
    request_id: str
    worker_id: str
    args: Mapping[str, Any] = field(default_factory=dict)


class Signal(Generic[P]):
    """Receivers of one event: ``connect(fn)`` (also as a decorator), ``disconnect(fn)``.

    A receiver takes the payload; it may be ``def`` or ``async def``. Receivers run in
    the order they were connected, in the process (and event loop) that sends the signal.
    """

    __slots__ = ("name", "receivers")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.receivers: list[Receiver[P]] = []

    def __bool__(self) -> bool:
        return bool(self.receivers)

    def connect(self, receiver: Receiver[P]) -> Receiver[P]:
        """Add ``receiver`` (once: connecting it again does nothing); returns it."""
        if not callable(receiver):
            raise TypeError(f"signal {self.name}: receiver {receiver!r} is not callable")
        if receiver not in self.receivers:
            self.receivers.append(receiver)
        return receiver

    def disconnect(self, receiver: Receiver[P]) -> None:
        """Remove ``receiver`` (nothing if it was not connected)."""
        if receiver in self.receivers:
            self.receivers.remove(receiver)

    async def asend(self, payload: P) -> None:
        """Call every receiver, awaiting async ones; never raises."""
        for receiver in list(self.receivers):
            try:
                returned = receiver(payload)
                if inspect.isawaitable(returned):
                    await returned
            except Exception as exc:
                _failed(self.name, receiver, exc)

    def send(self, payload: P) -> None:
        """Call every receiver from sync code; never raises. An async receiver runs as a task
        of the running event loop if there is one (not awaited), else to its end here."""
        for receiver in list(self.receivers):
            try:
                returned = receiver(payload)
                if inspect.isawaitable(returned):
                    _finish(self.name, receiver, returned)
            except Exception as exc:
                _failed(self.name, receiver, exc)


_PENDING: set[asyncio.Task[None]] = set()  # tasks of async receivers sent from sync code


def _finish(name: str, receiver: Callable[..., object], awaitable: Awaitable[object]) -> None:
    async def guarded() -> None:
        try:
            await awaitable
        except Exception as exc:
            _failed(name, receiver, exc)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(guarded())
        return
    task = loop.create_task(guarded())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


def _failed(name: str, receiver: Callable[..., object], exc: BaseException) -> None:
    log.error("signal %s: receiver %s failed: %s: %s", name, _name(receiver), type(exc).__name__, exc)


def _name(fn: Callable[..., object]) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{qualname}" if module else qualname


class Signals:
    """The catalogue of an app's signals: ``app.signals.task_failed.connect(fn)``."""

    def __init__(self) -> None:
        #: A job is about to be written to its queue (once per job of an enqueue).
        self.before_publish: Signal[PublishInfo] = Signal()
        #: A job was written (its transaction may still be the caller's to commit).
        self.after_publish: Signal[PublishInfo] = Signal()
        #: A worker took a job from its queue and is about to run it.
        self.task_received: Signal[TaskInfo] = Signal()
        #: The handler is about to be called (before the middleware).
        self.task_started: Signal[TaskInfo] = Signal()
        self.task_succeeded: Signal[TaskOutcome] = Signal()
        #: An attempt failed: the job is retried (task_retried follows) or dead-lettered.
        self.task_failed: Signal[TaskOutcome] = Signal()
        self.task_retried: Signal[TaskOutcome] = Signal()
        self.task_dead_lettered: Signal[TaskOutcome] = Signal()
        #: The job was cancelled: revoked, or expired before it started.
        self.task_revoked: Signal[TaskOutcome] = Signal()
        self.worker_started: Signal[WorkerInfo] = Signal()
        self.worker_stopping: Signal[WorkerInfo] = Signal()
        self.worker_stopped: Signal[WorkerInfo] = Signal()
        #: Beat enqueued a schedule's job.
        self.beat_fired: Signal[BeatFired] = Signal()
        #: A workflow run's first job begins (again, if that job is retried).
        self.workflow_started: Signal[WorkflowInfo] = Signal()
        #: The run suspended (sleep, event, child): this job ends, a later one resumes it.
        self.workflow_suspended: Signal[WorkflowInfo] = Signal()
        self.workflow_resumed: Signal[WorkflowInfo] = Signal()
        #: The workflow function returned: the run completes.
        self.workflow_ended: Signal[WorkflowInfo] = Signal()
        self.control_command_received: Signal[ControlInfo] = Signal()
        for name, signal in vars(self).items():
            signal.name = name  # each is named after its attribute

    def __getitem__(self, name: str) -> Signal[Any]:
        """The signal called ``name``; raises KeyError naming the known ones."""
        signal = getattr(self, name, None) if not name.startswith("_") else None
        if not isinstance(signal, Signal):
            raise KeyError(f"no signal {name!r}; known: {', '.join(self.names())}")
        return signal

    def names(self) -> list[str]:
        return [name for name, value in vars(self).items() if isinstance(value, Signal)]


#: ``call_next()`` runs the rest of the chain and the handler, and returns its value.
CallNext = Callable[[], Awaitable[Any]]
Middleware = Callable[[TaskInfo, CallNext], Awaitable[Any]]


def check_middleware(fn: object) -> Middleware:
    """``fn`` if it can be a middleware (an ``async def`` taking ``(ctx, call_next)``);
    raises TypeError naming it otherwise."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"middleware {fn!r} must be an async def taking (ctx, call_next)")
    return fn


async def run_chain(middleware: list[Middleware], info: TaskInfo, call: CallNext) -> Any:
    """``call()`` wrapped by ``middleware``, the first registered outermost."""
    if not middleware:
        return await call()

    async def step(index: int) -> Any:
        if index == len(middleware):
            return await call()
        return await middleware[index](info, lambda: step(index + 1))

    return await step(0)


__all__ = [
    "BeatFired",
    "CallNext",
    "ControlInfo",
    "Middleware",
    "PublishInfo",
    "Signal",
    "Signals",
    "TaskInfo",
    "TaskOutcome",
    "WorkerInfo",
    "WorkflowInfo",
]
