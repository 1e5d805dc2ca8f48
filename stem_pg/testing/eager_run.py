"""Running one job eagerly through the worker's own Executor: the same context injection,
middleware, signals, argument checks and retry policy a worker applies, with no database
and no sleeping between retries."""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stem_pg.core.canvas import Signature
from stem_pg.core.envelope import JobSpec
from stem_pg.core.signing import SIGNATURE_HEADER
from stem_pg.core.states import TaskState
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, RetryLater
from stem_pg.worker.context import Inflight
from stem_pg.worker.execute import Executor
from stem_pg.worker.hooks import TaskHooks
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.state import WorkerState

if TYPE_CHECKING:
    from stem_pg.client.app import Stem
    from stem_pg.core.signals import CallNext

T = TypeVar("T")

#: The worker id eager jobs run under (``ctx.worker_id``, the signals' ``worker_id``).
EAGER_WORKER_ID = "eager"
#: The lease an eager attempt holds: nothing extends it, nothing takes it away.
EAGER_LEASE_SECONDS = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class EagerJob:
    """One job eager mode ran: what was enqueued and how it ended.

    ``state`` is ``succeeded``, ``failed`` or ``cancelled`` once it ran (``queued`` before);
    ``errors`` holds the error of each failed attempt and ``retry_delays`` the seconds a
    worker would have waited before each retry (eager mode does not wait). ``exception``
    is what the handler raised last, as it raised it.
    """

    id: str
    task: str
    queue: str
    priority: int
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    max_retries: int
    expires_at: datetime | None = None
    visibility_timeout: int | None = None
    acks_late: bool = True
    state: str = TaskState.QUEUED.value
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    dead_reason: str | None = None
    #: False for a success of an ``ignore_result`` task: nothing is stored, as on a worker.
    kept: bool = True
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    retry_delays: list[float] = field(default_factory=list)
    exception: BaseException | None = field(default=None, repr=False)
    enqueued_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_spec(cls, spec: JobSpec) -> EagerJob:
        """The job a planned ``spec`` describes; its countdown and eta are not waited for."""
        headers = json.loads(spec.headers)
        headers.pop(SIGNATURE_HEADER, None)  # the claim takes it out too
        expires_at = spec.expires_at
        if expires_at is None and spec.expires_in is not None:
            expires_at = _now() + timedelta(seconds=spec.expires_in)
        return cls(
            spec.id,
            spec.task,
            spec.queue,
            spec.priority,
            json.loads(spec.args),
            headers,
            spec.max_retries,
            expires_at,
            spec.visibility_timeout,
            spec.acks_late,
        )

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def claimed(self) -> ClaimedJob:
        """The job as a worker's claim hands it over, on attempt ``attempts``."""
        return ClaimedJob(
            self.id,
            self.task,
            self.queue,
            self.priority,
            self.kwargs or None,
            self.headers or None,
            self.attempts,
            self.max_retries,
            self.expires_at,
            self.visibility_timeout,
            self.acks_late,
        )

    def cancel(self, reason: str) -> None:
        """Never run (a chain stopped, a chord's header failed): cancelled, as the database does."""
        self.state = TaskState.CANCELLED.value
        self.error = reason
        self.finished_at = _now()

    def __str__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.kwargs.items())
        return f"{self.task}({args}) queue={self.queue} state={self.state} id={self.id}"


class _CapturingHooks(TaskHooks):
    """The worker's hooks, keeping what the handler (or its middleware) raised."""

    def __init__(self, app: Stem, job: EagerJob) -> None:
        super().__init__(app.signals, app.middleware_chain, EAGER_WORKER_ID)
        self.job = job

    @property
    def wrapped(self) -> bool:
        return True  # every handler call goes through call(), which keeps what it raised

    async def call(self, entry: Inflight, call: CallNext) -> Any:
        try:
            return await super().call(entry, call)
        except Exception as exc:
            self.job.exception = exc
            raise


async def run_job(app: Stem, job: EagerJob) -> EagerJob:
    """Run ``job`` to its end: every retry its policy allows, at once."""
    state = WorkerState(WorkerSettings(queues=(job.queue,), worker_id=EAGER_WORKER_ID))
    executor = Executor(
        app.registry,
        state,
        threads=1,
        wake_leases=lambda: None,
        routing=app.routing,
        hooks=_CapturingHooks(app, job),
    )
    job.started_at = _now()
    try:
        while True:
            job.attempts += 1
            lease = float(job.visibility_timeout or EAGER_LEASE_SECONDS)
            outcome = await executor.run(Inflight(job.claimed(), str(uuid.uuid4()), lease))
            if not isinstance(outcome, RetryLater):
                _finish(job, outcome)
                return job
            job.state = TaskState.RETRIED.value
            job.errors.append(outcome.error)
            job.retry_delays.append(outcome.delay)
    finally:
        executor.shutdown()


def _finish(job: EagerJob, outcome: Outcome) -> None:
    if not isinstance(outcome, Finish):  # a release: only a stopping worker hands jobs back
        job.cancel("released without running")
        return
    job.state = str(outcome.state)
    job.result = None if outcome.result is None else json.loads(outcome.result)
    job.error, job.traceback, job.dead_reason = outcome.error, outcome.traceback, outcome.dead_reason
    job.kept = outcome.keep
    if outcome.error is not None and outcome.state == TaskState.FAILED:
        job.errors.append(outcome.error)
    job.finished_at = _now()


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end from sync code: on a new event loop, in a thread of its own
    when this thread already runs one (a sync enqueue inside async code blocks it, as a
    database round trip would)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="stem-eager") as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


def task_name_of(task: object) -> str:
    """A task's name: a name, a decorated handler (``task_name``), a Task (``name``) or a Signature."""
    if isinstance(task, str):
        return task
    if isinstance(task, Signature):
        return task.task
    for attribute in ("task_name", "name"):
        value = getattr(task, attribute, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"expected a task or a task name, got {task!r}")


def failed_first(jobs: Sequence[EagerJob]) -> EagerJob | None:
    """The first job that did not succeed, if any."""
    return next((job for job in jobs if job.state != TaskState.SUCCEEDED), None)
