"""Running one handler and turning what happened into an outcome to flush."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import traceback as tb
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from stem_pg.core.envelope import encode_json
from stem_pg.core.errors import TaskError
from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.core.tasks import Reject, Retry, TaskDefinition, TaskRegistry
from stem_pg.core.workflows import CANVAS_HEADER, WORKFLOW_HEADER
from stem_pg.db.stores.rows import Finish, Outcome, RetryLater
from stem_pg.worker.context import Inflight, TaskContext

ADVANCING_HEADERS = frozenset({CANVAS_HEADER, WORKFLOW_HEADER})


class TimeLimitExceeded(TaskError):
    """The handler ran past its ``time_limit`` (or ``soft_time_limit`` for async handlers)."""


class Executor:
    """Calls handlers: async ones on the loop, sync ones in a thread pool."""

    def __init__(
        self,
        registry: TaskRegistry,
        *,
        worker_id: str,
        threads: int,
        wake_leases: Callable[[], None],
        revoked: Callable[[str], str | None] = lambda task_id: None,
    ) -> None:
        self.registry = registry
        self.worker_id = worker_id
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stem-task")
        self.wake_leases = wake_leases
        self.revoked = revoked
        #: Sync handlers still running in threads (also those the worker stopped waiting for).
        self.running_threads = 0

    async def run(self, entry: Inflight) -> Outcome:
        """Run the job of ``entry`` once; never raises except CancelledError."""
        job = entry.job
        revoked = entry.revoked or self.revoked(job.id)
        if revoked is not None:  # a revoke the claim could not see: rescued job, offline worker
            return Finish(job.id, entry.token, TaskState.CANCELLED, error=revoked)
        definition = self.registry.get(job.task)
        if definition is None:
            return _dead(
                entry,
                f"task {job.task!r} is not registered on worker {self.worker_id}",
                DeadLetterReason.UNREGISTERED_TASK,
            )
        if job.expires_at is not None and job.expires_at <= datetime.now(UTC):
            return Finish(job.id, entry.token, TaskState.CANCELLED, error="expired before it started")
        try:
            value = await self._call(definition, entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if entry.revoked is not None:
                return Finish(job.id, entry.token, TaskState.CANCELLED, error=entry.revoked)
            return failure(entry, definition, exc)
        if entry.revoked is not None:  # revoked with terminate, but it ran to its end first
            return Finish(job.id, entry.token, TaskState.CANCELLED, error=entry.revoked)
        try:
            result = encode_json(value, what=f"{job.task}: return value")
        except TaskError as exc:
            return _dead(entry, str(exc), DeadLetterReason.REJECTED)
        return Finish(
            job.id,
            entry.token,
            TaskState.SUCCEEDED,
            result=result,
            # Canvas and workflow jobs always keep theirs: the jobs_done trigger reads it.
            keep=not definition.options.ignore_result or not ADVANCING_HEADERS.isdisjoint(job.headers or ()),
        )

    async def _call(self, definition: TaskDefinition, entry: Inflight) -> Any:
        options = definition.options
        kwargs = dict(entry.job.args) if entry.job.args else {}
        if definition.context_param is not None:
            kwargs[definition.context_param] = TaskContext(entry, self.worker_id, self.wake_leases)
        if options.soft_time_limit is not None:
            entry.soft_deadline = time.monotonic() + options.soft_time_limit
        if definition.is_async:
            limit = _smallest(options.time_limit, options.soft_time_limit)
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
        future.add_done_callback(self._thread_done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), options.time_limit)
        except TimeoutError:
            # A thread cannot be killed: the handler keeps its thread until it returns, but
            # the job is failed now and its result, if any, is ignored.
            raise TimeLimitExceeded(
                f"{entry.job.task}: time limit of {options.time_limit}s exceeded"
            ) from None

    def _thread_done(self, _: object) -> None:
        self.running_threads -= 1

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def failure(entry: Inflight, definition: TaskDefinition | None, exc: BaseException) -> Outcome:
    """Retry the job if its policy allows, else fail it into the dead letters."""
    job = entry.job
    cause = exc.exc if isinstance(exc, Retry) and exc.exc is not None else exc
    error = f"{type(cause).__name__}: {cause}"
    if isinstance(exc, Reject):
        return _dead(entry, error, DeadLetterReason.REJECTED, exc)
    options = definition.options if definition else None
    countdown = exc.countdown if isinstance(exc, Retry) else None
    retryable = isinstance(exc, Retry) or (options is not None and isinstance(exc, options.autoretry_for))
    if not retryable:
        return _dead(entry, error, DeadLetterReason.REJECTED, exc)
    if job.attempts > job.max_retries:
        return _dead(entry, error, DeadLetterReason.MAX_RETRIES_EXCEEDED, exc)
    if countdown is None:
        assert options is not None
        countdown = options.retry_policy(job.max_retries).delay(job.attempts)
    return RetryLater(job.id, entry.token, countdown, error)


def _dead(entry: Inflight, error: str, reason: DeadLetterReason, exc: BaseException | None = None) -> Finish:
    trace = "".join(tb.format_exception(exc)) if exc is not None else None
    return Finish(
        entry.job.id,
        entry.token,
        TaskState.FAILED,
        error=error,
        traceback=trace,
        dead_reason=reason,
    )


def _smallest(*limits: float | None) -> float | None:
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None
