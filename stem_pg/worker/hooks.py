"""The worker's side of the hooks: sends the task signals around each attempt and runs the
handler inside the app's middleware (stem_pg.core.signals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stem_pg.core.signals import (
    CallNext,
    Middleware,
    Signal,
    Signals,
    TaskInfo,
    TaskOutcome,
    WorkerInfo,
    run_chain,
)
from stem_pg.core.states import TaskState
from stem_pg.db.stores.rows import Finish, Outcome, RetryLater
from stem_pg.worker.context import Inflight
from stem_pg.worker.settings import WorkerSettings

# Plain strings: an enum member's lookup costs more than the rest of a success's hooks.
_SUCCEEDED, _FAILED = TaskState.SUCCEEDED.value, TaskState.FAILED.value


class TaskHooks:
    """Signals and middleware of one worker; each method costs a truth test when unused."""

    def __init__(self, signals: Signals | None, middleware: Sequence[Middleware], worker_id: str) -> None:
        self.signals = signals or Signals()
        self.middleware = list(middleware)
        self.worker_id = worker_id

    def info(self, entry: Inflight) -> TaskInfo:
        job = entry.job
        return TaskInfo(
            job.task, job.id, job.queue, job.attempts, self.worker_id, job.args or {}, job.headers or {}
        )

    @property
    def wrapped(self) -> bool:
        """Whether a handler runs inside anything: ``task_started`` receivers or middleware."""
        return bool(self.middleware or self.signals.task_started.receivers)

    async def received(self, entry: Inflight) -> None:
        if self.signals.task_received:
            await self.signals.task_received.asend(self.info(entry))

    async def call(self, entry: Inflight, call: CallNext) -> Any:
        """``task_started``, then ``call()`` (the handler) inside the middleware."""
        started = self.signals.task_started
        if not started and not self.middleware:
            return await call()
        info = self.info(entry)
        if started:
            await started.asend(info)
        return await run_chain(self.middleware, info, call)

    async def ended(self, entry: Inflight, outcome: Outcome) -> None:
        """The outcome signals of ``outcome`` (a released job sends none)."""
        s = self.signals
        if isinstance(outcome, RetryLater):
            if s.task_failed or s.task_retried:
                ended = TaskOutcome(
                    self.info(entry), TaskState.RETRIED.value, error=outcome.error, retry_in=outcome.delay
                )
                await _send(ended, s.task_failed, s.task_retried)
        elif isinstance(outcome, Finish):
            if outcome.state == _SUCCEEDED:
                sent: tuple[Signal[TaskOutcome], ...] = (s.task_succeeded,)
            elif outcome.state == _FAILED:
                sent = (s.task_failed, s.task_dead_lettered)
            else:
                sent = (s.task_revoked,)
            if any(sent):
                state = str(outcome.state)
                info = self.info(entry)
                ended = TaskOutcome(
                    info, state, outcome.result, outcome.error, dead_reason=outcome.dead_reason
                )
                await _send(ended, *sent)


async def _send(payload: TaskOutcome, *signals: Signal[TaskOutcome]) -> None:
    for signal in signals:
        if signal:
            await signal.asend(payload)


async def worker_signal(signal: Signal[WorkerInfo], namespace: str, settings: WorkerSettings) -> None:
    """Send one of the worker signals, if anything receives it."""
    if signal:
        await signal.asend(WorkerInfo(settings.worker_id, namespace, tuple(settings.queues)))
