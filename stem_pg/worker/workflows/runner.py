"""One job's hold on one workflow run: loading the run and its ledger, and every write
the job makes (checkpoints, suspensions, child runs, cancels), each guarded by its lease.

The job does not own the run for good: a rewind, a cancel or a rescue can give the
run to another job at any time, so each write checks the lease and a lost one ends
this job (RunStopped) without changing anything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from stem_pg.client.backend import Backend
from stem_pg.client.enqueue import insert_async
from stem_pg.client.workflows import parents_to_wake, plan_run
from stem_pg.core.envelope import JobSpec
from stem_pg.core.planning import Planner
from stem_pg.core.tasks import Reject
from stem_pg.core.trace_hooks import HANDED_ON
from stem_pg.core.workflows import RunStatus, StepKind, WorkflowDefinition, WorkflowError, job_id_for
from stem_pg.db.stores.workflow_rows import Checkpoint, RunLease, RunRecord
from stem_pg.db.stores.workflow_runs import AsyncWorkflowRunStore
from stem_pg.worker.context import TaskContext

AsyncConn = psycopg.AsyncConnection[TupleRow]
Workflows = Mapping[str, WorkflowDefinition]


class Suspended(BaseException):
    """The run was suspended durably; this job ends here. Not an Exception, so
    workflow code's ``except Exception`` does not swallow it."""


class RunStopped(BaseException):
    """This job no longer runs the run (cancelled, rewound, or its lease was taken over)."""


class RunJob:
    """The job ``task`` executing run ``run_id`` of ``definition``.

    ``backend`` gives it connections and wake-ups; ``planner`` and ``workflows``
    plan the child runs it starts.
    """

    def __init__(
        self,
        backend: Backend,
        planner: Planner,
        workflows: Workflows,
        definition: WorkflowDefinition,
        run_id: str,
        task: TaskContext,
    ) -> None:
        self.backend = backend
        self.planner = planner
        self.workflows = workflows
        self.store = AsyncWorkflowRunStore(backend.queries)
        self.definition = definition
        self.run_id = run_id
        self.task = task
        self.lease = RunLease(run_id=run_id, job_id=task.task_id, token=task.lease_token)

    async def start(self) -> tuple[RunRecord, dict[str, Checkpoint]] | None:
        """Begin executing the run: it and its ledger, or None if this job has nothing to do
        (superseded, ended, past a time limit: then cancelled). Reject if there is no run."""
        async with self.connection() as conn:
            run = await self.store.load_run(conn, run_id=self.run_id)
            if run is None:
                raise Reject(f"workflow run {self.run_id} does not exist")
            if run.job_id != self.task.task_id or run.status in ("completed", "cancelled"):
                return None  # a superseded job (the run moved on): nothing to do
            reason = limit_passed(run, datetime.now(UTC))
            if reason is not None:
                await self.cancel(conn, reason)
                return None
            if not await self.store.begin(conn, lease=self.lease):
                return None
            return run, {c.step: c for c in await self.store.load_steps(conn, run_id=self.run_id)}

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConn]:
        async with (await self.backend.apool()).connection() as conn:
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
        """Hand the run to its next job, due at ``wake_at`` capped by the run's time limits
        (traced: in this job's trace, linked to this run of it)."""
        traced = HANDED_ON.get()
        suspended = await self.store.suspend(
            conn,
            lease=self.lease,
            next_job_id=job_id_for(self.run_id, run.resumes + 1),
            waiting_for=waiting_for,
            wake_at=wake_at,
            resume_at=capped(run, wake_at, datetime.now(UTC)),
            headers="{}" if traced is None else json.dumps(dict(traced())),
        )
        if not suspended:
            raise RunStopped

    async def create_child(
        self, conn: AsyncConn, workflow: str, params: Mapping[str, Any] | None, *, run_id: str, step: str
    ) -> JobSpec:
        """Create child run ``run_id`` of ``workflow`` and its first job (wake it after commit).

        Raises WorkflowError if ``workflow`` is not registered or cannot take ``params``.
        """
        if self.workflows.get(workflow) is None:
            raise WorkflowError(
                f"workflow {self.definition.name}: child workflow {workflow!r} is not registered"
            )
        run, spec = plan_run(
            self.planner,
            self.workflows,
            workflow,
            params,
            run_id=run_id,
            parent_run_id=self.run_id,
            parent_step=step,
        )
        await self.store.create_run(conn, run=run)
        await insert_async(conn, self.backend.queries, [spec])
        return spec

    async def cancel(self, conn: AsyncConn, reason: str) -> None:
        """Cancel the run (and its children) from inside the worker; parents waiting on it wake."""
        async with conn.transaction():
            parents = parents_to_wake(await self.store.cancel(conn, run_id=self.run_id, reason=reason))
            if parents:
                await self.store.wake(conn, run_ids=parents)


def limit_passed(run: RunRecord, now: datetime) -> str | None:
    """Why the run must be cancelled now (a time limit passed), or None."""
    deadline = run.deadline_at
    if deadline is not None and now >= deadline:
        return f"max_run_time exceeded (deadline {deadline.isoformat()})"
    limit, since = run.max_suspended, run.suspended_at
    if run.status != RunStatus.SUSPENDED or limit is None or since is None:
        return None
    if now >= since + timedelta(seconds=limit):
        return f"max_suspended_time of {limit:g}s exceeded"
    return None


def capped(run: RunRecord, wake_at: datetime | None, now: datetime) -> datetime | None:
    """When the next job must run: the wake-up, or earlier if a time limit falls first."""
    candidates = [t for t in (wake_at, run.deadline_at) if t is not None]
    if run.max_suspended is not None:
        candidates.append(now + timedelta(seconds=run.max_suspended))
    return min(candidates) if candidates else None
