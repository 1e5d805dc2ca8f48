"""What an attempt that raised comes to: one mapping from a handler's exception (or the
cancellation that stopped it) to the outcome the worker flushes, for jobs and broadcast
messages alike."""

from __future__ import annotations

import asyncio
import traceback as tb
from dataclasses import replace

from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.core.storable import storable_text
from stem_pg.core.tasks import Reject, Retry, TaskDefinition
from stem_pg.db.stores.rows import Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight


def outcome_of(
    entry: Inflight, exc: BaseException, definition: TaskDefinition | None, *, worker_id: str, what: str
) -> Outcome:
    """The outcome of an attempt that ended by raising ``exc``.

    A terminate-revoke wins over whatever the handler raised on its way out
    (``TaskRevoked`` from a checkpoint, a ``CancelledError``, anything). A
    cancellation otherwise means the worker stopped (or lost the lease): a started
    attempt runs again at once, an unstarted one is handed back. Everything else is
    the handler's failure, for its retry policy to judge (``Retry``, ``Reject``,
    time limits, ``autoretry_for``). ``what`` names the entry ("task", "message").
    """
    job = entry.job
    if entry.revoked is not None:
        return Finish(job.id, entry.token, TaskState.CANCELLED, error=entry.revoked)
    if isinstance(exc, asyncio.CancelledError):
        if not entry.started:
            return Release(job.id, entry.token)
        stopped = f"worker {worker_id} stopped while the {what} was running"
        return RetryLater(job.id, entry.token, 0.0, stopped)
    return failure(entry, definition, exc)


def failure(entry: Inflight, definition: TaskDefinition | None, exc: BaseException) -> Outcome:
    """Retry the job if its policy allows, else fail it into the dead letters."""
    job = entry.job
    cause = exc.exc if isinstance(exc, Retry) and exc.exc is not None else exc
    error = f"{type(cause).__name__}: {cause}"
    if isinstance(exc, Reject):
        return dead_letter(entry, error, DeadLetterReason.REJECTED, exc)
    options = definition.options if definition else None
    countdown = exc.countdown if isinstance(exc, Retry) else None
    retryable = isinstance(exc, Retry) or (options is not None and isinstance(exc, options.autoretry_for))
    if not retryable:
        return dead_letter(entry, error, DeadLetterReason.REJECTED, exc)
    if job.attempts > job.max_retries:
        return dead_letter(entry, error, DeadLetterReason.MAX_RETRIES_EXCEEDED, exc)
    if countdown is None:
        assert options is not None
        countdown = options.retry_policy(job.max_retries).delay(job.attempts)
    return RetryLater(job.id, entry.token, countdown, error)


def dead_letter(
    entry: Inflight, error: str, reason: DeadLetterReason, exc: BaseException | None = None
) -> Finish:
    """Fail the job for good, with the traceback of ``exc`` when there is one."""
    trace = "".join(tb.format_exception(exc)) if exc is not None else None
    return Finish(
        entry.job.id,
        entry.token,
        TaskState.FAILED,
        error=error,
        traceback=trace,
        dead_reason=reason,
    )


def storable(outcome: Outcome) -> Outcome:
    """``outcome`` with its error text and traceback made storable: a handler's exception
    message may hold a NUL character, which Postgres would refuse (with the whole batch)."""
    if isinstance(outcome, Finish) and (outcome.error is not None or outcome.traceback is not None):
        return outcome._replace(
            error=None if outcome.error is None else storable_text(outcome.error),
            traceback=None if outcome.traceback is None else storable_text(outcome.traceback),
        )
    if isinstance(outcome, RetryLater):
        return replace(outcome, error=storable_text(outcome.error))
    return outcome


def count_as(outcome: Outcome) -> str:
    """The key an outcome is counted under in ``stats``: its final state, ``retried`` or ``released``."""
    if isinstance(outcome, Finish):
        return outcome.state
    return "retried" if isinstance(outcome, RetryLater) else "released"
