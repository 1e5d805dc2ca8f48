"""Running one handler, for a job or a broadcast message, and turning what happened into an
outcome to flush."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from stem_pg.core.envelope import encode_json
from stem_pg.core.errors import TaskError
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.core.tasks import TaskDefinition, TaskRegistry
from stem_pg.core.workflows import CANVAS_HEADER, WORKFLOW_HEADER
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight, TaskContext
from stem_pg.worker.hooks import TaskHooks
from stem_pg.worker.outcomes import dead_letter, outcome_of, storable
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)

ADVANCING_HEADERS = frozenset({CANVAS_HEADER, WORKFLOW_HEADER})
# The per-job path uses plain values: an enum member's lookup costs more than most of a success.
_SUCCEEDED = TaskState.SUCCEEDED.value


class TimeLimitExceeded(TaskError):
    """The handler ran past its ``time_limit`` (or ``soft_time_limit`` for async handlers).
    A sync handler keeps running in its thread: its worker process then retires."""


class Executor:
    """Calls handlers: async ones on the loop, sync ones in a thread pool."""

    def __init__(
        self,
        registry: TaskRegistry,
        state: WorkerState,
        *,
        threads: int,
        wake_leases: Callable[[], None],
        revoked: Callable[[str], str | None] = lambda task_id: None,
        started: Callable[[], None] = lambda: None,
        overran: Callable[[str], None] = lambda reason: None,
        verify: Callable[[ClaimedJob], str | None] | None = None,
        routing: RoutingRegistry | None = None,
        hooks: TaskHooks | None = None,
    ) -> None:
        #: Task name -> handler: what the worker runs is looked up here, in ``run``.
        self.registry = registry
        self.state = state
        self.worker_id = state.id
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stem-task")
        self.wake_leases = wake_leases
        self.revoked = revoked
        #: Called as each attempt starts (the recycler counts them).
        self.started = started
        #: Called when a sync handler ran past its hard limit: its thread cannot be stopped,
        #: so the process must retire (stem_pg.worker.recycle).
        self.overran = overran
        #: Under payload signing: why a job's signature does not verify (None: it does).
        self.verify = verify
        #: What ``ctx.routing`` reads (the queue's or channel's ``meta``).
        self.routing = routing
        #: Sync handlers still running in threads (also those the worker stopped waiting for).
        self.running_threads = 0
        #: Signals and middleware (stem_pg.worker.hooks).
        self.hooks = hooks or TaskHooks(None, (), state.id)

    async def run(self, entry: Inflight, what: str = "task") -> Outcome:
        """Run the job of ``entry`` once (unless the worker is stopping) and say how it
        ended, in an outcome Postgres can store; never raises. ``what`` names it in errors:
        "task", or "message" for a broadcast."""
        outcome = storable(await self._attempt(entry, what))
        if what == "task":
            await self.hooks.ended(entry, outcome)
        return outcome

    async def _attempt(self, entry: Inflight, what: str) -> Outcome:
        job = entry.job
        definition: TaskDefinition | None = None
        try:
            if self.state.stopping:  # claimed, but no runner had started it: hand it back
                return Release(job.id, entry.token)
            if what == "task" and self.hooks.signals.task_received:
                await self.hooks.received(entry)
            entry.started = True
            entry.started_at = time.monotonic()
            self.started()
            revoked = entry.revoked or self.revoked(job.id)
            if revoked is not None:  # a revoke the claim could not see: rescued job, offline worker
                return Finish(job.id, entry.token, TaskState.CANCELLED, error=revoked)
            if self.verify is not None and (problem := self.verify(job)) is not None:
                return self._unverified(entry, problem, what)
            definition = self.registry.get(job.task)
            if definition is None:
                return self._unregistered(entry)
            if job.expires_at is not None and job.expires_at <= datetime.now(UTC):
                return Finish(job.id, entry.token, TaskState.CANCELLED, error="expired before it started")
            problem = definition.kwargs_problem(job.args)  # a TypeError is not transient
            if problem is None and definition.models:  # nor an argument its model refuses
                problem = definition.models.problem(job.task, job.args)
            if problem is not None:
                return dead_letter(entry, f"bad_arguments: {problem}", DeadLetterReason.BAD_ARGUMENTS)
            try:
                if what == "task" and self.hooks.wrapped:
                    value = await self.hooks.call(entry, functools.partial(self._call, definition, entry))
                else:
                    value = await self._call(definition, entry)
            except Exception as exc:  # the handler's own failure
                return outcome_of(entry, exc, definition, worker_id=self.worker_id, what=what)
            if entry.revoked is not None:  # revoked with terminate, but it ran to its end first
                return Finish(job.id, entry.token, TaskState.CANCELLED, error=entry.revoked)
            try:
                result = "null" if value is None else encode_json(value, what=f"{job.task}: return value")
            except TaskError as exc:  # no JSON, or JSON that jsonb refuses: this job fails, not the batch
                return dead_letter(entry, f"{type(exc).__name__}: {exc}", DeadLetterReason.REJECTED)
            # Canvas and workflow jobs always keep theirs: the jobs_done trigger reads it.
            keep = not definition.options.ignore_result or not ADVANCING_HEADERS.isdisjoint(job.headers or ())
            # Positional: keywords make a NamedTuple's constructor twice as dear.
            return Finish(job.id, entry.token, _SUCCEEDED, result, None, None, None, keep)
        except asyncio.CancelledError as exc:  # terminated, lease lost, or the worker stopping
            return outcome_of(entry, exc, definition, worker_id=self.worker_id, what=what)
        except Exception as exc:  # a bug in stem_pg, not in the handler: retry, never leak the slot
            log.exception("worker %s: internal error running %s %s", self.worker_id, what, job.id)
            return RetryLater(job.id, entry.token, 1.0, f"internal worker error: {exc!r}")

    def _unregistered(self, entry: Inflight) -> Outcome:
        close = self.registry.close_match(entry.job.task)
        hint = f"; did you mean {close!r}?" if close else ""
        return dead_letter(
            entry,
            f"task {entry.job.task!r} is not registered on worker {self.worker_id}{hint}",
            DeadLetterReason.UNREGISTERED_TASK,
        )

    def _unverified(self, entry: Inflight, problem: str, what: str) -> Outcome:
        job = entry.job
        log.warning("worker %s: %s %s (%s) not run: %s", self.worker_id, what, job.id, job.task, problem)
        return dead_letter(entry, f"signature_invalid: {problem}", DeadLetterReason.SIGNATURE_INVALID)

    async def _call(self, definition: TaskDefinition, entry: Inflight) -> Any:
        options = definition.options
        kwargs = dict(entry.job.args) if entry.job.args else {}
        if definition.models:  # pydantic model arguments, rebuilt from their JSON
            kwargs = definition.models.load(entry.job.task, kwargs)
        if definition.context_param is not None:
            kwargs[definition.context_param] = TaskContext(
                entry, self.worker_id, self.wake_leases, self.routing
            )
        if options.soft_time_limit is not None:
            entry.soft_deadline = time.monotonic() + options.soft_time_limit
        if definition.is_async:
            limit = definition.async_limit
            if limit is None:
                return await definition.fn(**kwargs)
            try:
                async with asyncio.timeout(limit):
                    return await definition.fn(**kwargs)
            except TimeoutError:
                raise TimeLimitExceeded(f"{entry.job.task}: time limit of {limit}s exceeded") from None
        loop = asyncio.get_running_loop()
        call = contextvars.copy_context().run
        future = loop.run_in_executor(self.pool, functools.partial(call, definition.fn, **kwargs))
        self.running_threads += 1
        entry.thread_running = True
        future.add_done_callback(functools.partial(self._thread_done, entry))
        try:
            return await asyncio.wait_for(asyncio.shield(future), options.time_limit)
        except TimeoutError:
            # A thread cannot be killed: the attempt ends now (its result, if any, is
            # ignored) and the process retires, so that the thread dies with it and a
            # fresh process takes its slots. The worker holds the retry until then.
            message = f"{entry.job.task}: time limit of {options.time_limit}s exceeded"
            self.overran(f"task {entry.job.id} ({message}) still runs in its thread")
            raise TimeLimitExceeded(message) from None

    def _thread_done(self, entry: Inflight, _: object) -> None:
        self.running_threads -= 1
        entry.thread_running = False

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
