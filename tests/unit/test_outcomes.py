"""The one mapping from what an attempt raised to the outcome the worker flushes."""

from __future__ import annotations

import asyncio
from typing import Any

from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.core.tasks import Reject, Retry, TaskDefinition, TaskOptions
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight, TaskRevoked
from stem_pg.worker.outcomes import count_as, outcome_of


def _entry(*, attempts: int = 1, max_retries: int = 3, started: bool = True) -> Inflight:
    job = ClaimedJob(
        id="job-1",
        task="t",
        queue="default",
        priority=0,
        args={},
        headers=None,
        attempts=attempts,
        max_retries=max_retries,
        expires_at=None,
        visibility_timeout=None,
        acks_late=True,
    )
    return Inflight(job, "token", 30.0, started=started)


def _definition(**options: Any) -> TaskDefinition:
    return TaskDefinition("t", lambda: None, TaskOptions(**options))


def _outcome(
    entry: Inflight, exc: BaseException, definition: TaskDefinition | None = None, what: str = "task"
) -> Outcome:
    return outcome_of(entry, exc, definition or _definition(), worker_id="w1", what=what)


def test_a_terminate_revoke_wins_over_whatever_was_raised() -> None:
    for exc in (asyncio.CancelledError(), TaskRevoked("stop"), ValueError("boom"), Retry(countdown=1)):
        entry = _entry()
        entry.revoked = "revoked: ops"
        assert _outcome(entry, exc) == Finish("job-1", "token", TaskState.CANCELLED, error="revoked: ops")


def test_a_cancelled_attempt_runs_again_at_once_or_is_handed_back_unstarted() -> None:
    stopped = _outcome(_entry(), asyncio.CancelledError())
    assert stopped == RetryLater("job-1", "token", 0.0, "worker w1 stopped while the task was running")
    message = _outcome(_entry(), asyncio.CancelledError(), what="message")
    assert message == RetryLater("job-1", "token", 0.0, "worker w1 stopped while the message was running")
    assert _outcome(_entry(started=False), asyncio.CancelledError()) == Release("job-1", "token")


def test_retry_reject_and_other_exceptions_follow_the_task_policy() -> None:
    retry = _outcome(_entry(), Retry(countdown=5, exc=KeyError("k")))
    assert retry == RetryLater("job-1", "token", 5, "KeyError: 'k'")

    rejected = _outcome(_entry(), Reject("bad input"))
    assert isinstance(rejected, Finish)
    assert (rejected.state, rejected.error, rejected.dead_reason) == (
        TaskState.FAILED,
        "Reject: bad input",
        DeadLetterReason.REJECTED,
    )
    assert rejected.traceback is not None and "Reject: bad input" in rejected.traceback

    not_retried = _outcome(_entry(), ValueError("x"), _definition(autoretry_for=()))
    assert isinstance(not_retried, Finish) and not_retried.dead_reason == DeadLetterReason.REJECTED

    exhausted = _outcome(_entry(attempts=4, max_retries=3), ValueError("x"))
    assert isinstance(exhausted, Finish) and exhausted.dead_reason == DeadLetterReason.MAX_RETRIES_EXCEEDED

    backoff = _outcome(_entry(attempts=1, max_retries=3), ValueError("x"), _definition(retry_jitter=False))
    assert isinstance(backoff, RetryLater) and backoff.error == "ValueError: x" and backoff.delay > 0


def test_outcomes_are_counted_by_final_state_retried_or_released() -> None:
    assert count_as(Finish("j", "t", TaskState.SUCCEEDED)) == "succeeded"
    assert count_as(Finish("j", "t", TaskState.CANCELLED)) == "cancelled"
    assert count_as(RetryLater("j", "t", 1.0, "e")) == "retried"
    assert count_as(Release("j", "t")) == "released"
