"""Eager mode: ``with app.testing.eager():`` runs every task inline when it is enqueued.

Inside the block the app's enqueue methods (``enqueue``, ``aenqueue``, ``enqueue_many``,
``aenqueue_many``, ``apply``, ``result``; so ``task.delay``, ``task.s(...).delay()`` and
canvases too) plan each request as usual (the same validation, routing and signals) and
run the job at once through the worker's executor (stem_pg.testing.eager_run): no
database, no worker, no waiting for countdowns or retry delays. Workflows and broadcasts
need a database and are refused with EagerError.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from stem_pg.client.canvas import PlannedMember, plan_canvas
from stem_pg.client.debounce import debounce_seconds
from stem_pg.client.results import TaskResult
from stem_pg.core.canvas import Canvas
from stem_pg.core.envelope import JobSpec, new_task_id
from stem_pg.core.errors import StemError
from stem_pg.core.planning import EnqueueRequest, Expires
from stem_pg.core.signals import publish_info
from stem_pg.core.workflows import CanvasKind
from stem_pg.testing.eager_results import EagerCanvasResult, EagerResult
from stem_pg.testing.eager_run import EagerJob, failed_first, run_coroutine, run_job

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

#: The app methods eager mode stands in for, while its block runs.
PATCHED = (
    "enqueue",
    "aenqueue",
    "enqueue_many",
    "aenqueue_many",
    "apply",
    "result",
    "start_workflow",
    "broadcast",
    "abroadcast",
)
_MARK = "_stem_eager"
_active: list[EagerMode] = []
_active_lock = threading.Lock()


class EagerError(StemError):
    """What eager mode cannot do without a database (workflows, broadcasts), or an unknown id."""


def active_eager(app: Any) -> EagerMode | None:
    """The eager mode ``app`` is in, if any."""
    found = vars(app).get(_MARK) if hasattr(app, "__dict__") else None
    return found if isinstance(found, EagerMode) else None


def only_eager_app() -> Any:
    """The app of the one eager block running in this process, or None (none, or several)."""
    with _active_lock:
        return _active[0].app if len(_active) == 1 else None


class EagerMode:
    """Runs ``app``'s tasks inline while active (a context manager; ``app.testing.eager()``).

    ``jobs`` lists every job enqueued in the block, in order, with how it ended. With
    ``propagate`` an enqueue whose job failed raises what the handler raised, at once;
    otherwise the handle's ``get()`` raises TaskFailed, as after a worker ran it.
    """

    def __init__(self, app: Stem, *, propagate: bool = False) -> None:
        self.app = app
        self.propagate = propagate
        self.jobs: list[EagerJob] = []
        self._by_id: dict[str, EagerJob] = {}

    def __repr__(self) -> str:
        return f"<EagerMode of {self.app.namespace!r}: {len(self.jobs)} jobs>"

    def __enter__(self) -> EagerMode:
        if active_eager(self.app) is not None:
            raise EagerError("this app is in eager mode already (eager blocks do not nest)")
        for name in PATCHED:
            setattr(self.app, name, getattr(self, name))
        vars(self.app)[_MARK] = self
        with _active_lock:
            _active.append(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for name in (*PATCHED, _MARK):
            vars(self.app).pop(name, None)
        with _active_lock:
            _active.remove(self)

    def job(self, task_id: str) -> EagerJob:
        """The record of a job enqueued in this block; raises EagerError for another id."""
        found = self._by_id.get(task_id)
        if found is None:
            raise EagerError(f"task {task_id} was not enqueued in this eager block")
        return found

    # -- what the app's methods become ------------------------------------------------------

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
        """``app.enqueue``, run at once (``connection`` and ``debounce`` do not delay it)."""
        if debounce is not None or key is not None:
            debounce_seconds(debounce, task=name)
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}
        )
        job = self._record(self._plan([request])[0])
        run_coroutine(run_job(self.app, job))
        return self._handle(job)

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
        """``app.aenqueue``: the handler runs on the caller's event loop."""
        request = EnqueueRequest(
            name, kwargs, task_id, countdown, eta, expires, priority, queue, headers or {}
        )
        job = self._record(self._plan([request])[0])
        await run_job(self.app, job)
        return self._handle(job)

    def enqueue_many(self, requests: Iterable[Any], *, connection: Any = None) -> list[TaskResult]:
        """``app.enqueue_many``: every request is planned (and checked) before the first runs."""
        jobs = [self._record(spec) for spec in self._plan(_requests(requests))]
        for job in jobs:
            run_coroutine(run_job(self.app, job))
        return [self._handle(job) for job in jobs]

    async def aenqueue_many(self, requests: Iterable[Any], *, connection: Any = None) -> list[TaskResult]:
        jobs = [self._record(spec) for spec in self._plan(_requests(requests))]
        for job in jobs:
            await run_job(self.app, job)
        return [self._handle(job) for job in jobs]

    def apply(self, canvas: Canvas, *, connection: Any = None) -> EagerCanvasResult:
        """``app.apply``: a chain's links one after another, a group's members, a chord's
        header then its callback, each handed the results as the database would hand them."""
        canvas_id = new_task_id()
        kind, members = plan_canvas(self.app.planner, canvas_id, canvas)
        jobs = [self._record(member.spec) for member in members]
        run_coroutine(_run_canvas(self.app, kind, members, jobs))
        failed = failed_first(jobs)
        if self.propagate and failed is not None and failed.exception is not None:
            raise failed.exception
        return EagerCanvasResult(
            self.app.backend, canvas_id, kind, [EagerResult(self.app.backend, j) for j in jobs]
        )

    def result(self, task_id: str) -> TaskResult:
        """``app.result`` of a job of this block."""
        return EagerResult(self.app.backend, self.job(task_id))

    def start_workflow(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise EagerError(
            "eager mode runs tasks and canvases only: workflows need a database"
            " (use run_until_idle on a migrated namespace, e.g. the stem_app fixture)"
        )

    def broadcast(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise EagerError(
            "eager mode runs tasks and canvases only: broadcasts need a database"
            " (use run_until_idle on a migrated namespace, e.g. the stem_app fixture)"
        )

    async def abroadcast(self, *args: Any, **kwargs: Any) -> NoReturn:
        self.broadcast()

    # -- helpers ----------------------------------------------------------------------------

    def _plan(self, requests: list[EnqueueRequest]) -> list[JobSpec]:
        planner = self.app.planner
        for request in requests:
            if planner.broadcast_route(request) is not None:
                self.broadcast()
        specs = list(planner.plan_batch(requests)) if len(requests) > 1 else [planner.plan(requests[0])]
        signals = self.app.signals
        for spec in specs:
            if signals.before_publish:
                signals.before_publish.send(publish_info(spec))
        for spec in specs:
            if signals.after_publish:
                signals.after_publish.send(publish_info(spec))
        return specs

    def _record(self, spec: JobSpec) -> EagerJob:
        job = EagerJob.from_spec(spec)
        self.jobs.append(job)
        self._by_id[job.id] = job
        return job

    def _handle(self, job: EagerJob) -> TaskResult:
        if self.propagate and job.exception is not None and job.state == "failed":
            raise job.exception
        return EagerResult(self.app.backend, job)


def _requests(requests: Iterable[Any]) -> list[EnqueueRequest]:
    return [r if isinstance(r, EnqueueRequest) else EnqueueRequest(r[0], r[1]) for r in requests]


async def _run_canvas(
    app: Stem, kind: CanvasKind, members: list[PlannedMember], jobs: list[EagerJob]
) -> None:
    """What the ``jobs_done`` trigger does with a canvas's members, in one process."""
    if kind is CanvasKind.GROUP:
        for job in jobs:
            await run_job(app, job)
        return
    if kind is CanvasKind.CHAIN:
        for position, (member, job) in enumerate(zip(members, jobs, strict=True)):
            if position:
                previous = jobs[position - 1]
                if previous.state != "succeeded":
                    reason = f"chain stopped: link {position - 1} ({previous.task}) {_ended(previous)}"
                    for later in jobs[position:]:
                        later.cancel(reason)
                    return
                if member.result_arg is not None:
                    job.kwargs = {**job.kwargs, member.result_arg: previous.result}
            await run_job(app, job)
        return
    *header, callback = jobs
    for job in header:
        await run_job(app, job)
    failed = failed_first(header)
    if failed is not None:
        callback.cancel(f"{kind.value} member {header.index(failed)} ({failed.task}) {_ended(failed)}")
        return
    result_arg = members[-1].result_arg
    if result_arg is not None:
        callback.kwargs = {**callback.kwargs, result_arg: [job.result for job in header]}
    await run_job(app, callback)


def _ended(job: EagerJob) -> str:
    return f"{job.state}: {job.error or 'no error recorded'}"
