"""Durable workflows, the client side: recording definitions, starting runs, events,
cancel, rewind, and run handles that wait on LISTEN/NOTIFY.

A run is executed by ordinary jobs of the workflow's task name (one at a time,
``wf_runs.job_id``), so it is claimed with a lease, rescued when its worker dies
and retried with the task's policy. The client only records the definition and
the task options of those jobs; a worker binds the handler that replays runs
(``stem_pg.worker.workflows``), so this side never imports the worker.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Generic

import psycopg
from typing_extensions import TypeVar

from stem_pg.client.backend import Backend
from stem_pg.client.control import Control
from stem_pg.client.enqueue import insert_sync
from stem_pg.client.native import driver_connection
from stem_pg.core.envelope import JobSpec, check_name, check_task_id, encode_input
from stem_pg.core.errors import StemError
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.storable import check_text, shown
from stem_pg.core.workflows import (
    WORKFLOW_HEADER,
    RunStatus,
    WorkflowDefinition,
    WorkflowError,
    WorkflowOptions,
    job_id_for,
)
from stem_pg.db.listen import await_reconnecting, wait_reconnecting
from stem_pg.db.stores.workflow_rows import CancelledRun, NewRun, RunOutcome
from stem_pg.db.stores.workflow_runs import AsyncWorkflowRunStore, WorkflowRunStore

__all__ = [
    "WorkflowCancelled",
    "WorkflowDefinition",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowRun",
    "cancel",
    "emit",
    "parents_to_wake",
    "plan_run",
    "rewind",
    "start_run",
    "workflow_task",
]

Workflows = Mapping[str, WorkflowDefinition]
#: ``WorkflowRun.get()`` re-reads the run at least this often, besides on notifications.
RECHECK = 5.0
#: What ``WorkflowRun.get()`` returns: the workflow's return type for ``Workflow.start``, else Any.
R = TypeVar("R", default=Any)


class WorkflowFailed(StemError):
    """``WorkflowRun.get()``: the run failed; ``error`` is its last error."""

    def __init__(self, run_id: str, error: str | None) -> None:
        super().__init__(f"workflow run {run_id} failed: {error}")
        self.run_id = run_id
        self.error = error


class WorkflowCancelled(StemError):
    """``WorkflowRun.get()``: the run was cancelled (by hand, by a time limit, or with its parent)."""


def workflow_task(definition: WorkflowDefinition) -> Callable[..., Any]:
    """What the task registry holds under a workflow's name, with the task options of its
    jobs: an ``async`` stand-in that a worker replaces with the handler that replays runs
    (``stem_pg.worker.workflows.WorkflowTasks``). Called anywhere else, it refuses."""

    async def run_workflow(run_id: str, ctx: Any) -> Any:
        raise WorkflowError(
            f"workflow {definition.name!r}: run {run_id} is executed by a worker, which replays it"
        )

    run_workflow.__qualname__ = f"workflow:{definition.name}"
    run_workflow.workflow = definition  # type: ignore[attr-defined]
    return run_workflow


def plan_run(
    planner: Planner,
    workflows: Workflows,
    name: str,
    params: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    parent_step: str | None = None,
) -> tuple[NewRun, JobSpec]:
    """The new run of ``name`` and its first job; raises WorkflowError for bad params."""
    definition = workflows.get(name)
    options = definition.options if definition else WorkflowOptions()
    if params is not None and not isinstance(params, Mapping):
        raise WorkflowError(f"workflow {name!r}: params must be a JSON object, got {params!r}")
    run_id = check_task_id(run_id, what="run_id") if run_id is not None else uuid.uuid4().hex
    if definition is not None:
        try:  # the function takes (ctx, **params): refuse params it cannot take, now
            inspect.signature(definition.fn).bind(None, **(params or {}))
        except TypeError as exc:
            raise WorkflowError(
                f"workflow {name!r}: params do not fit {definition.fn.__qualname__}: {exc}"
            ) from None
    encoded = encode_input(
        dict(params or {}), what=f"workflow {name!r}: params", max_bytes=planner.max_payload_bytes
    )
    spec = planner.plan(
        EnqueueRequest(
            name,
            {"run_id": run_id},
            task_id=job_id_for(run_id, 0),
            headers={WORKFLOW_HEADER: run_id},
        )
    )
    run = NewRun(
        id=run_id,
        workflow=name,
        params=encoded,
        queue=spec.queue,
        priority=spec.priority,
        max_retries=spec.max_retries,
        job_id=spec.id,
        parent_run_id=parent_run_id,
        parent_step=parent_step,
        max_run_time=options.max_run_time,
        max_suspended=options.max_suspended_time,
    )
    return run, spec


def start_run(
    backend: Backend,
    planner: Planner,
    workflows: Workflows,
    name: str,
    params: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    connection: psycopg.Connection[Any] | None = None,
) -> WorkflowRun:
    """Create a run and its first job (in ``connection``'s transaction when given).

    Raises WorkflowError if ``name`` is a task, or for params the workflow cannot take.
    """
    connection = driver_connection(connection)  # django.db.connection: its psycopg connection
    if workflows.get(name) is None and planner.registry.get(name) is not None:
        raise WorkflowError(f"{name!r} is a task, not a workflow; enqueue it with app.enqueue")
    if planner.tracing is not None:
        with planner.tracing.sending(1):  # the first job's producer span (stem_pg.tracing)
            return _start(backend, planner, workflows, name, params, run_id, connection)
    return _start(backend, planner, workflows, name, params, run_id, connection)


def _start(
    backend: Backend,
    planner: Planner,
    workflows: Workflows,
    name: str,
    params: Mapping[str, Any] | None,
    run_id: str | None,
    connection: psycopg.Connection[Any] | None,
) -> WorkflowRun:
    run, spec = plan_run(planner, workflows, name, params, run_id=run_id)

    def write(conn: psycopg.Connection[Any]) -> None:
        if WorkflowRunStore(backend.queries).create_run(conn, run=run):
            insert_sync(conn, backend.queries, [spec])

    if connection is not None:
        write(connection)
    else:
        with backend.pool.connection() as conn, conn.transaction():
            write(conn)
    backend.wake([spec], connection)
    return WorkflowRun(backend, run.id)


def emit(backend: Backend, topic: str, payload: Any = None, *, max_bytes: int | None = None) -> int:
    """Deliver ``payload`` to every run waiting on ``topic``; returns how many it reached."""
    if not isinstance(topic, str) or not topic:
        raise WorkflowError(f"an event topic must be a non-empty string, got {shown(topic)}")
    check_name(topic, what="event topic")
    encoded = encode_input(payload, what=f"event {topic!r}: payload", max_bytes=max_bytes)
    store = WorkflowRunStore(backend.queries)
    with backend.pool.connection() as conn, conn.transaction():
        run_ids = store.emit(conn, topic=topic, payload=encoded)
        if run_ids:
            store.wake(conn, run_ids=run_ids)
    return len(run_ids)


def cancel(backend: Backend, run_id: str, reason: str | None = None) -> list[str]:
    """Cancel a run and its unfinished children; returns the runs cancelled (none if it had ended).

    Their waiting jobs are cancelled and running ones terminated (a revoke), and a
    parent waiting for a cancelled child wakes up to see it.
    """
    check_task_id(run_id, what="run_id")
    why = check_text(reason, what="reason") if reason else "cancelled"
    store = WorkflowRunStore(backend.queries)
    with backend.pool.connection() as conn, conn.transaction():
        runs = store.cancel(conn, run_id=run_id, reason=why)
        parents = parents_to_wake(runs)
        if parents:
            store.wake(conn, run_ids=parents)
    jobs = [run.job_id for run in runs]
    if jobs:
        Control.of(backend).revoke(
            jobs, terminate=True, reason=f"workflow run cancelled: {why}", timeout=None
        )
    return sorted({run.id for run in runs})


def parents_to_wake(cancelled: list[CancelledRun]) -> list[str]:
    """The parents of cancelled runs that were not cancelled with them: they wait for a child."""
    ids = {run.id for run in cancelled}
    return sorted({r.parent_run_id for r in cancelled if r.parent_run_id and r.parent_run_id not in ids})


def rewind(backend: Backend, run_id: str, step: str) -> int:
    """Run ``run_id`` again from ``step``: that checkpoint and the later ones are dropped.

    Refused while a job is executing the run. Returns how many checkpoints were dropped.
    """
    check_task_id(run_id, what="run_id")
    check_name(step, what="step")
    store = WorkflowRunStore(backend.queries)
    with backend.pool.connection() as conn, conn.transaction():
        run = store.load_run(conn, run_id=run_id)
        if run is None:
            raise WorkflowError(f"no workflow run {run_id!r} in namespace {backend.namespace!r}")
        steps = store.list_steps(conn, run_id=run_id)
        seq = {s.step: s.seq for s in steps}.get(step)
        if seq is None:
            known = ", ".join(s.step for s in steps) or "none yet"
            raise WorkflowError(f"run {run_id} has no checkpoint {step!r} (it has: {known})")
        next_job = job_id_for(run_id, run.resumes + 1)
        rewound = store.rewind(conn, run_id=run_id, seq=seq, next_job_id=next_job)
    if not rewound.rewound:
        raise WorkflowError(f"run {run_id} is executing right now; cancel it or wait, then rewind")
    backend.waker.request([run.queue])  # its new job is due now
    return rewound.dropped


class WorkflowRun(Generic[R]):
    """A handle on one run: ``status()``, ``steps()``, and ``get()`` / ``wait()`` for its result
    (typed ``R`` for runs started with ``Workflow.start``, else Any)."""

    def __init__(self, backend: Backend, run_id: str) -> None:
        self.backend = backend
        self.id = run_id

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.id}>"

    def status(self) -> dict[str, Any] | None:
        """The run's row of the ``workflow_runs`` view, or None if there is no such run."""
        with self.backend.pool.connection() as conn:
            run = WorkflowRunStore(self.backend.queries).show_run(conn, run_id=self.id)
        return None if run is None else asdict(run)

    def steps(self) -> list[dict[str, Any]]:
        """The run's checkpoints (``workflow_steps``), in order."""
        with self.backend.pool.connection() as conn:
            steps = WorkflowRunStore(self.backend.queries).list_steps(conn, run_id=self.id)
        return [asdict(step) for step in steps]

    def get(self, timeout: float | None = None) -> R:
        """Block until the run ends; its result, or WorkflowFailed / WorkflowCancelled.

        Raises TimeoutError after ``timeout`` seconds (the run goes on), WorkflowError if
        there is no such run.
        """
        store = WorkflowRunStore(self.backend.queries)
        pool = self.backend.pool
        ended = wait_reconnecting(
            lambda seconds: pool.connection(timeout=seconds),
            channel=self.backend.queries.channels.done,
            key=self.id,
            check=lambda conn: self._ended(store.outcome(conn, run_id=self.id)),
            timeout=timeout,
            late=self._late,
            recheck=RECHECK,
            what=f"workflow run {self.id}",
            poll=self.backend.wait_poll,
        )
        result: R = _outcome(self.id, ended)
        return result

    async def wait(self, timeout: float | None = None) -> R:
        """The async twin of ``get()``."""
        store = AsyncWorkflowRunStore(self.backend.queries)
        pool = await self.backend.apool()

        async def check(conn: psycopg.AsyncConnection[Any]) -> RunOutcome | None:
            return self._ended(await store.outcome(conn, run_id=self.id))

        ended = await await_reconnecting(
            lambda seconds: pool.connection(timeout=seconds),
            channel=self.backend.queries.channels.done,
            key=self.id,
            check=check,
            timeout=timeout,
            late=self._late,
            recheck=RECHECK,
            what=f"workflow run {self.id}",
            poll=self.backend.wait_poll,
        )
        result: R = _outcome(self.id, ended)
        return result

    def _ended(self, row: RunOutcome | None) -> RunOutcome | None:
        """The run's outcome once it has ended, else None."""
        if row is None:
            raise WorkflowError(f"no workflow run {self.id!r} in namespace {self.backend.namespace!r}")
        return row if RunStatus(row.status).is_final else None

    @property
    def _late(self) -> str:
        return f"workflow run {self.id} did not end in time"


def _outcome(run_id: str, row: RunOutcome) -> Any:
    if row.status == RunStatus.COMPLETED:
        return row.result
    if row.status == RunStatus.CANCELLED:
        raise WorkflowCancelled(f"workflow run {run_id} was cancelled: {row.error}")
    raise WorkflowFailed(run_id, row.error)
