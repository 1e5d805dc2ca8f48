"""Durable workflows, the worker side: the job handler that replays a run and the
``WorkflowContext`` its code sees.

Each job of a run calls the workflow function from the top. Completed steps,
sleeps, events and child runs are in the ``wf_steps`` ledger and return their
checkpointed outputs at once, so the code reaches where it stopped without
repeating a completed step's side effects. A step that was running when its
worker died runs again (at-least-once for the step in flight). Suspending
(sleep, await_event, child) ends the job: no worker slot is held while a run
waits; a fresh job resumes it. Every write is guarded by the job's lease token.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import TupleRow

from stem_pg.client.enqueue import insert_async
from stem_pg.client.workflows import (
    Seconds,
    WorkflowDefinition,
    WorkflowError,
    child_run_id,
    job_id_for,
    parents_to_wake,
    plan_run,
    seconds,
)
from stem_pg.core.envelope import JobSpec, encode_json
from stem_pg.core.errors import StemError
from stem_pg.core.tasks import Reject
from stem_pg.core.workflows import RunStatus, StepKind
from stem_pg.db.stores.workflow_rows import Checkpoint, RunLease, RunRecord
from stem_pg.db.stores.workflow_runs import AsyncWorkflowRunStore
from stem_pg.worker.context import TaskContext

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

AsyncConn = psycopg.AsyncConnection[TupleRow]


class EventTimeout(StemError):
    """``ctx.await_event``: the deadline passed before an event arrived (recorded: a replay raises it too)."""


class ChildWorkflowFailed(StemError):
    """``ctx.child``: the child run failed or was cancelled; ``error`` says why."""

    def __init__(self, run_id: str, status: str, error: str | None) -> None:
        super().__init__(f"child workflow run {run_id} {status}: {error}")
        self.run_id = run_id
        self.status = status
        self.error = error


class Suspended(BaseException):
    """The run was suspended durably; this job ends here. Not an Exception, so
    workflow code's ``except Exception`` does not swallow it."""


class RunStopped(BaseException):
    """This job no longer runs the run (cancelled, rewound, or its lease was taken over)."""


def workflow_handler(app: Stem, definition: WorkflowDefinition) -> Callable[..., Any]:
    """The task handler registered under the workflow's name."""

    async def run_workflow(run_id: str, ctx: TaskContext) -> Any:
        runner = _Runner(app, definition, run_id, ctx)
        return await runner.run()

    run_workflow.__qualname__ = f"workflow:{definition.name}"
    return run_workflow


class _Runner:
    def __init__(self, app: Stem, definition: WorkflowDefinition, run_id: str, task: TaskContext) -> None:
        self.app = app
        self.store = AsyncWorkflowRunStore(app.queries)
        self.definition = definition
        self.run_id = run_id
        self.task = task
        self.lease = RunLease(run_id=run_id, job_id=task.task_id, token=task.lease_token)

    async def run(self) -> Any:
        async with self.connection() as conn:
            run = await self.store.load_run(conn, run_id=self.run_id)
            if run is None:
                raise Reject(f"workflow run {self.run_id} does not exist")
            if run.job_id != self.task.task_id or run.status in ("completed", "cancelled"):
                return None  # a superseded job (the run moved on): nothing to do
            reason = _limit_passed(run, datetime.now(UTC))
            if reason is not None:
                await cancel_async(self.app, conn, self.run_id, reason)
                return None
            if not await self.store.begin(conn, lease=self.lease):
                return None
            ledger = {c.step: c for c in await self.store.load_steps(conn, run_id=self.run_id)}
        ctx = WorkflowContext(self, run, ledger)
        try:
            return await self.definition.fn(ctx, **run.params)
        except (Suspended, RunStopped):
            return None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConn]:
        async with (await self.app.apool()).connection() as conn:
            yield conn

    async def lock(self, conn: AsyncConn) -> None:
        """Lock the run row for a suspend-or-continue decision; RunStopped if not ours any more."""
        if await self.store.lock_run(conn, lease=self.lease) != RunStatus.RUNNING:
            raise RunStopped

    async def record(
        self, conn: AsyncConn, step: str, kind: StepKind, output: str | None, error: str | None
    ) -> Checkpoint:
        """Write a checkpoint; if one exists already (an emit got there first) that one counts."""
        written = await self.store.record_step(
            conn, lease=self.lease, step=step, kind=kind.value, output=output, error=error
        )
        if written:
            return Checkpoint(step, kind.value, None if output is None else json.loads(output), error)
        found = await self.checkpoint(conn, step)
        if found is None:
            raise RunStopped
        return found

    async def checkpoint(self, conn: AsyncConn, step: str) -> Checkpoint | None:
        return await self.store.get_step(conn, run_id=self.run_id, step=step)

    async def suspend(
        self, conn: AsyncConn, run: RunRecord, *, waiting_for: str, wake_at: datetime | None
    ) -> None:
        """Hand the run to its next job, due at ``wake_at`` capped by the run's time limits."""
        suspended = await self.store.suspend(
            conn,
            lease=self.lease,
            next_job_id=job_id_for(self.run_id, run.resumes + 1),
            waiting_for=waiting_for,
            wake_at=wake_at,
            resume_at=_capped(run, wake_at, datetime.now(UTC)),
        )
        if not suspended:
            raise RunStopped


class WorkflowContext:
    """What workflow code receives as its first argument.

    ``await ctx.step(name, fn, *args)``, ``await ctx.sleep(...)``, ``await
    ctx.await_event(topic)``, ``await ctx.child(workflow, params)``: each is
    checkpointed, so code that runs again after a crash or a suspension gets the
    recorded results back. Names must be stable across runs; a name used again in
    the same run (a loop) is numbered ``name#2``, ``name#3``...
    """

    def __init__(self, runner: _Runner, run: RunRecord, ledger: dict[str, Checkpoint]) -> None:
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
                if runner.app.workflows.get(workflow) is None:
                    raise WorkflowError(
                        f"workflow {self.workflow}: child workflow {workflow!r} is not registered"
                    )
                run, spec = plan_run(
                    runner.app, workflow, params, run_id=child_id, parent_run_id=self.run_id, parent_step=key
                )
                await runner.store.create_run(conn, run=run)
                await insert_async(conn, runner.app.queries, [spec])
                started = spec
            elif RunStatus(child.status).is_final:
                if child.status == RunStatus.COMPLETED:
                    output = encode_json(child.result, what="child result")
                    return await runner.record(conn, key, StepKind.CHILD, output, None)
                return await runner.record(conn, key, StepKind.CHILD, None, f"{child.status}: {child.error}")
            await runner.suspend(conn, self._run, waiting_for=f"child {child_id}", wake_at=None)
        if started is not None:  # the child's first job is committed now
            await runner.app.awake([started])
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
        reason = _limit_passed(replace(self._run, status=RunStatus.RUNNING), datetime.now(UTC))
        if reason is not None:
            async with self._runner.connection() as conn:
                await cancel_async(self._runner.app, conn, self.run_id, reason)
            raise RunStopped


def _limit_passed(run: RunRecord, now: datetime) -> str | None:
    deadline = run.deadline_at
    if deadline is not None and now >= deadline:
        return f"max_run_time exceeded (deadline {deadline.isoformat()})"
    limit, since = run.max_suspended, run.suspended_at
    if run.status != RunStatus.SUSPENDED or limit is None or since is None:
        return None
    if now >= since + timedelta(seconds=limit):
        return f"max_suspended_time of {limit:g}s exceeded"
    return None


def _capped(run: RunRecord, wake_at: datetime | None, now: datetime) -> datetime | None:
    """When the next job must run: the wake-up, or earlier if a time limit falls first."""
    candidates = [t for t in (wake_at, run.deadline_at) if t is not None]
    if run.max_suspended is not None:
        candidates.append(now + timedelta(seconds=run.max_suspended))
    return min(candidates) if candidates else None


async def cancel_async(app: Stem, conn: AsyncConn, run_id: str, reason: str) -> None:
    """Cancel a run (and its children) from inside a worker; parents waiting on it wake."""
    store = AsyncWorkflowRunStore(app.queries)
    async with conn.transaction():
        parents = parents_to_wake(await store.cancel(conn, run_id=run_id, reason=reason))
        if parents:
            await store.wake(conn, run_ids=parents)
