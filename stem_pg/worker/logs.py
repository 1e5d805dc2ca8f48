"""What a worker says about the tasks it runs: a line per failure, retry, dead letter,
revoke and unregistered task, a success line at DEBUG, and an INFO summary per interval.

Levels follow Celery's: a handler's failure that ends the job is an ERROR with its
traceback, a retry is INFO (the attempt's error on the line, no traceback), a dead
letter a WARNING, a success DEBUG. Successes are not logged at INFO: at thousands of
jobs a second a line per job is the log; the summary says how many there were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from stem_pg.core.logs import TRACEBACK_FIELD, job_fields
from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.db.stores.rows import Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight

log = logging.getLogger("stem_pg.worker.tasks")
summary_log = logging.getLogger("stem_pg.worker.summary")

#: The outcome kinds a summary counts as processed (``released`` never ran).
PROCESSED = ("succeeded", "failed", "cancelled", "retried")
# Plain strings: an enum member's attribute lookup costs more than the rest of a success.
_SUCCEEDED, _FAILED = TaskState.SUCCEEDED.value, TaskState.FAILED.value


def log_outcome(entry: Inflight, outcome: Outcome, what: str = "task") -> None:
    """Log what the attempt of ``entry`` came to (``what``: "task", or "message" for a broadcast)."""
    if isinstance(outcome, Finish):
        if outcome.state == _SUCCEEDED:
            if log.isEnabledFor(logging.DEBUG):
                _succeeded(entry, what)
        elif outcome.state == _FAILED:
            _failed(entry, outcome, what)
        else:
            _cancelled(entry, outcome, what)
    elif isinstance(outcome, RetryLater):
        _retried(entry, outcome, what)
    elif isinstance(outcome, Release) and log.isEnabledFor(logging.DEBUG):
        job = entry.job
        log.debug("%s %s[%s] handed back unstarted", what, job.task, job.id, extra=job_fields(job))


def _runtime(entry: Inflight) -> float:
    return time.monotonic() - entry.started_at if entry.started_at else 0.0


def _succeeded(entry: Inflight, what: str) -> None:
    job, runtime = entry.job, _runtime(entry)
    log.debug(
        "%s %s[%s] succeeded in %.3fs",
        what,
        job.task,
        job.id,
        runtime,
        extra={**job_fields(job), "event": "succeeded", "runtime": round(runtime, 6)},
    )


def _failed(entry: Inflight, outcome: Finish, what: str) -> None:
    job = entry.job
    reason = outcome.dead_reason or "failed"
    fields = {**job_fields(job), "reason": str(reason), "error": outcome.error}
    if reason == DeadLetterReason.UNREGISTERED_TASK:  # Celery: "Received unregistered task"
        log.error(
            "received unregistered %s %s[%s] on queue %s: dead-lettered (%s)",
            what,
            job.task,
            job.id,
            job.queue,
            reason,
            extra={**fields, "event": "dead_letter"},
        )
        return
    if outcome.traceback is not None:  # the handler raised and it is not retried
        log.error(
            "%s %s[%s] failed on attempt %d: %s",
            what,
            job.task,
            job.id,
            job.attempts,
            outcome.error,
            extra={
                **fields,
                "event": "failed",
                "exc_type": _exc_type(outcome.error),
                "runtime": round(_runtime(entry), 6),
                TRACEBACK_FIELD: outcome.traceback,
            },
        )
    log.warning(
        "%s %s[%s] dead-lettered (%s) after attempt %d: %s",
        what,
        job.task,
        job.id,
        reason,
        job.attempts,
        outcome.error,
        extra={**fields, "event": "dead_letter"},
    )


def _cancelled(entry: Inflight, outcome: Finish, what: str) -> None:
    job = entry.job
    error = outcome.error or "cancelled"
    event = "revoked" if error.startswith("revoked") else "cancelled"
    log.info(  # "task t[id] revoked: reason", "task t[id] cancelled: expired before it started"
        "%s %s[%s] %s",
        what,
        job.task,
        job.id,
        error if event == "revoked" else f"cancelled: {error}",
        extra={**job_fields(job), "event": event, "reason": error},
    )


def _retried(entry: Inflight, outcome: RetryLater, what: str) -> None:
    job = entry.job
    eta = datetime.now(UTC) + timedelta(seconds=outcome.delay)
    log.info(
        "%s %s[%s] retry: attempt %d failed (%s); attempt %d runs in %.2fs, at %s",
        what,
        job.task,
        job.id,
        job.attempts,
        outcome.error,
        job.attempts + 1,
        outcome.delay,
        eta.isoformat(timespec="milliseconds"),
        extra={
            **job_fields(job),
            "event": "retry",
            "error": outcome.error,
            "exc_type": _exc_type(outcome.error),
            "delay": outcome.delay,
            "eta": eta.isoformat(),
        },
    )


def _exc_type(error: str | None) -> str | None:
    """``ValueError`` of ``"ValueError: boom"`` (how outcomes spell a handler's exception)."""
    if not error:
        return None
    name, sep, _ = error.partition(":")
    return name if sep and name.isidentifier() else None


class Summary:
    """Logs, every ``interval`` seconds, what the worker processed since the last line;
    nothing for an interval in which nothing happened."""

    def __init__(self, counts: Counter[str], worker_id: str, interval: float) -> None:
        self.counts = counts
        self.worker_id = worker_id
        self.interval = interval
        self._seen: Counter[str] = Counter()
        self._since = time.monotonic()

    async def loop(self) -> None:
        """``run_once`` every interval until cancelled (then once more, for the rest)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.run_once()
        finally:
            self.run_once()

    def run_once(self) -> dict[str, int] | None:
        """Log the counts since the last call, if any task was processed; returns them."""
        now, current = time.monotonic(), Counter(self.counts)
        delta = {kind: current[kind] - self._seen[kind] for kind in PROCESSED}
        processed = sum(delta.values())
        if processed <= 0:
            self._since = now  # the next line covers the interval it happened in
            return None
        elapsed, self._since, self._seen = now - self._since, now, current
        extra: dict[str, Any] = {"event": "summary", "processed": processed, "seconds": round(elapsed, 3)}
        extra.update(delta)
        summary_log.info(
            "worker %s: processed %d in the last %.1fs: %d succeeded, %d failed, %d retried%s",
            self.worker_id,
            processed,
            elapsed,
            delta["succeeded"],
            delta["failed"],
            delta["retried"],
            f", {delta['cancelled']} cancelled" if delta["cancelled"] else "",
            extra=extra,
        )
        return delta
