"""``WorkflowContext``: what workflow code sees, and how each of its calls replays.

Each job of a run calls the workflow function from the top. Completed steps,
sleeps, events and child runs are in the ``wf_steps`` ledger and return their
checkpointed outputs at once, so the code reaches where it stopped without
repeating a completed step's side effects. A step that was running when its
worker died runs again (at-least-once for the step in flight). Suspending
(sleep, await_event, child) ends the job: no worker slot is held while a run
waits; a fresh job resumes it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stem_pg.core.envelope import JobSpec, encode_json
from stem_pg.core.errors import StemError
from stem_pg.core.workflows import RunStatus, Seconds, StepKind, WorkflowError, child_run_id, seconds
from stem_pg.db.stores.workflow_rows import Checkpoint, RunRecord
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows.runner import RunJob, RunStopped, Suspended, limit_passed


class EventTimeout(StemError):
    """``ctx.await_event``: the deadline passed before an event arrived (recorded: a replay raises it too)."""


class ChildWorkflowFailed(StemError):
    """``ctx.child``: the child run failed or was cancelled; ``error`` says why."""

    def __init__(self, run_id: str, status: str, error: str | None) -> None:
        super().__init__(f"child workflow run {run_id} {status}: {error}")
        self.run_id = run_id
        self.status = status
        self.error = error


class WorkflowContext:
    """What workflow code receives as its first argument.

    ``await ctx.step(name, fn, *args)``, ``await ctx.sleep(...)``, ``await
    ctx.await_event(topic)``, ``await ctx.child(workflow, params)``: each is
    checkpointed, so code that runs again after a crash or a suspension gets the
    recorded results back. Names must be stable across runs; a name used again in
    the same run (a loop) is numbered ``name#2``, ``name#3``...
    """

    def __init__(self, runner: RunJob, run: RunRecord, ledger: dict[str, Checkpoint]) -> None:
        self._runner = runner
        self._run = run
        self._ledger = ledger
        self._seen: Counter[str] = Counter()

    @property
    def run_id(self) -> str:
        return self._runner.run_id

    @property
    def workflow(self) -> str:
        return self._runner.definition.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._run.params)

    @property
    def task(self) -> TaskContext:
        """The job's TaskContext (attempt, headers, heartbeat)."""
        return self._runner.task

    def heartbeat(self) -> None:
        """A checkpoint for long steps: raises once the job should stop (lease lost, revoked)."""
        self._runner.task.heartbeat()

    async def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once for this run and checkpoint its JSON result.

        Plain functions run in a thread; coroutine functions are awaited. Returns
        the result as JSON gives it back, the first time and on every replay.
        """
        key = self._key(name)
        done = self._ledger.get(key)
        if done is not None:
            return done.output
        await self._check_time_limit()
        if inspect.iscoroutinefunction(fn):
            value = await fn(*args, **kwargs)
        else:
            value = await asyncio.to_thread(fn, *args, **kwargs)
        output = encode_json(value, what=f"workflow {self.workflow}: step {key!r} result")
        async with self._runner.connection() as conn:
            recorded = await self._runner.record(conn, key, StepKind.STEP, output, None)
        return recorded.output

    async def sleep(self, duration: Seconds, *, name: str | None = None) -> None:
        """Suspend the run for ``duration`` (seconds, timedelta or ``"5m"``), holding no worker."""
        length = seconds(duration, what=f"workflow {self.workflow}: sleep")
        assert length is not None
        await self._sleep(name, lambda now: now + timedelta(seconds=length))

    async def sleep_until(self, when: datetime, *, name: str | None = None) -> None:
        """Suspend the run until ``when`` (timezone-aware), holding no worker."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise WorkflowError(
                f"workflow {self.workflow}: sleep_until needs an aware datetime, got {when!r}"
            )
        await self._sleep(name, lambda now: when)

    async def _sleep(self, name: str | None, until: Callable[[datetime], datetime]) -> None:
        key = self._key(name or "sleep")
        done = self._ledger.get(key)
        now = datetime.now(UTC)
        wake = until(now) if done is None else datetime.fromisoformat(done.output["until"])
        if done is not None and wake <= now:
            return
        async with self._runner.connection() as conn, conn.transaction():
            await self._runner.lock(conn)
            if done is None:  # the wake-up time is checkpointed, so a replay keeps it
                output = encode_json({"until": wake.isoformat()}, what="sleep")
                await self._runner.record(conn, key, StepKind.SLEEP, output, None)
            await self._runner.suspend(
                conn, self._run, waiting_for=f"sleep until {wake.isoformat()}", wake_at=wake
            )
        raise Suspended

    async def await_event(self, topic: str, *, timeout: Seconds = None, name: str | None = None) -> Any:
        """Suspend until ``app.emit(topic, payload)`` (or ``stem wf emit``) delivers; returns the payload.

        Raises EventTimeout once ``timeout`` passed without an event.
        """
        if not isinstance(topic, str) or not topic:
            raise WorkflowError(f"workflow {self.workflow}: an event topic must be a non-empty string")
        limit = seconds(timeout, what=f"workflow {self.workflow}: await_event timeout")
        key = self._key(name or f"event:{topic}")
        done = self._ledger.get(key)
        if done is None:
            done = await self._await(key, topic, limit)
        if done.error is not None:
            raise EventTimeout(f"workflow run {self.run_id}: {done.error}")
        return done.output

    async def _await(self, key: str, topic: str, limit: float | None) -> Checkpoint:
        runner = self._runner
        async with runner.connection() as conn, conn.transaction():
            await runner.lock(conn)
            delivered = await runner.checkpoint(conn, key)
            if delivered is not None:
                return delivered
            now = datetime.now(UTC)
            waiter = await runner.store.get_waiter(conn, run_id=self.run_id, step=key)
            if waiter is None:
                deadline = None if limit is None else now + timedelta(seconds=limit)
                await runner.store.add_waiter(
                    conn, run_id=self.run_id, step=key, topic=topic, deadline_at=deadline
                )
            elif waiter.deadline_at is not None and waiter.deadline_at <= now:
                if not await runner.store.take_waiter(conn, run_id=self.run_id, step=key):
                    found = await runner.checkpoint(conn, key)  # an emit took it between our read and now
                    if found is not None:
                        return found
                error = f"no event on topic {topic!r} before {waiter.deadline_at.isoformat()}"
                return await runner.record(conn, key, StepKind.EVENT, None, error)
            else:
                deadline = waiter.deadline_at
            await runner.suspend(conn, self._run, waiting_for=f"event {topic}", wake_at=deadline)
        raise Suspended

    async def child(
        self, workflow: str, params: Mapping[str, Any] | None = None, *, name: str | None = None
    ) -> Any:
        """Start child workflow ``workflow`` and suspend until it ends; returns its result.

        Raises ChildWorkflowFailed if it failed or was cancelled. Cancelling this
        run cancels the child too.
        """
        key = self._key(name or f"child:{workflow}")
        done = self._ledger.get(key)
        if done is None:
            done = await self._child(key, workflow, params)
        if done.error is not None:
            status, _, error = done.error.partition(": ")
            raise ChildWorkflowFailed(child_run_id(self.run_id, key), status, error)
        return done.output

    async def _child(self, key: str, workflow: str, params: Mapping[str, Any] | None) -> Checkpoint:
        runner = self._runner
        child_id = child_run_id(self.run_id, key)
        started: JobSpec | None = None
        async with runner.connection() as conn, conn.transaction():
            await runner.lock(conn)
            child = await runner.store.outcome(conn, run_id=child_id)
            if child is None:
                started = await runner.create_child(conn, workflow, params, run_id=child_id, step=key)
            elif RunStatus(child.status).is_final:
                if child.status == RunStatus.COMPLETED:
                    output = encode_json(child.result, what="child result")
                    return await runner.record(conn, key, StepKind.CHILD, output, None)
                return await runner.record(conn, key, StepKind.CHILD, None, f"{child.status}: {child.error}")
            await runner.suspend(conn, self._run, waiting_for=f"child {child_id}", wake_at=None)
        if started is not None:  # the child's first job is committed now
            await runner.backend.awake([started])
        raise Suspended

    def _key(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise WorkflowError(
                f"workflow {self.workflow}: step names must be non-empty strings, got {name!r}"
            )
        self._seen[name] += 1
        count = self._seen[name]
        return name if count == 1 else f"{name}#{count}"

    async def _check_time_limit(self) -> None:
        """Past max_run_time, the run is cancelled before another step starts."""
        reason = limit_passed(replace(self._run, status=RunStatus.RUNNING), datetime.now(UTC))
        if reason is not None:
            async with self._runner.connection() as conn:
                await self._runner.cancel(conn, reason)
            raise RunStopped
