"""Durable workflows, the client side: definitions, starting runs, events, cancel,
rewind, and run handles that wait on LISTEN/NOTIFY.

A run is executed by ordinary jobs of the workflow's task name (one at a time,
``wf_runs.job_id``), so it is claimed with a lease, rescued when its worker dies
and retried with the task's policy; ``stem_pg.worker.workflows`` is the code
those jobs run.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import psycopg
from psycopg.sql import SQL, Identifier

from stem_pg.client.results import await_mention, wait_for_mention
from stem_pg.core.durations import parse_duration
from stem_pg.core.envelope import JobSpec, check_task_id, encode_json
from stem_pg.core.errors import StemError
from stem_pg.core.workflows import WORKFLOW_HEADER, RunStatus
from stem_pg.db.stores.workflow_rows import CancelledRun, NewRun, RunOutcome
from stem_pg.db.stores.workflow_runs import AsyncWorkflowRunStore, WorkflowRunStore

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

Seconds = float | timedelta | str | None
#: ``WorkflowRun.get()`` re-reads the run at least this often, besides on notifications.
RECHECK = 5.0


class WorkflowError(StemError):
    """A workflow call was refused: unknown workflow or run, bad parameters, a run that cannot be rewound."""


class WorkflowFailed(StemError):
    """``WorkflowRun.get()``: the run failed; ``error`` is its last error."""

    def __init__(self, run_id: str, error: str | None) -> None:
        super().__init__(f"workflow run {run_id} failed: {error}")
        self.run_id = run_id
        self.error = error


class WorkflowCancelled(StemError):
    """``WorkflowRun.get()``: the run was cancelled (by hand, by a time limit, or with its parent)."""


@dataclass(frozen=True)
class WorkflowOptions:
    """``@app.workflow(...)`` settings besides the task options of its jobs."""

    max_run_time: float | None = None
    max_suspended_time: float | None = None


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Any]
    options: WorkflowOptions


def seconds(value: Seconds, *, what: str) -> float | None:
    """A positive duration from seconds, a timedelta or a string like ``5m``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise WorkflowError(f"{what}: {exc}") from None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
        raise WorkflowError(f"{what} must be a positive duration, got {value!r}")
    return float(number)


def build_definition(name: str, fn: Callable[..., Any], options: WorkflowOptions) -> WorkflowDefinition:
    if not inspect.iscoroutinefunction(fn):
        raise WorkflowError(
            f"workflow {name!r}: {fn.__qualname__} must be an 'async def' taking (ctx, **params);"
            " put blocking work in ctx.step(...), which runs plain functions in a thread"
        )
    return WorkflowDefinition(name, fn, options)


def job_id_for(run_id: str, resumes: int) -> str:
    """The id of the job that runs ``run_id`` after ``resumes`` suspensions."""
    return f"{run_id}.{resumes}"


def child_run_id(parent_run_id: str, step: str) -> str:
    """A child's run id is derived from its parent and step, so a replay finds the same child."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"stem-workflow:{parent_run_id}/{step}").hex


def plan_run(
    app: Stem,
    name: str,
    params: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    parent_step: str | None = None,
) -> tuple[NewRun, JobSpec]:
    """The new run of ``name`` and its first job."""
    from stem_pg.client.app import EnqueueRequest

    definition = app.workflows.get(name)
    options = definition.options if definition else WorkflowOptions()
    if params is not None and not isinstance(params, Mapping):
        raise WorkflowError(f"workflow {name!r}: params must be a JSON object, got {params!r}")
    run_id = check_task_id(run_id) if run_id is not None else uuid.uuid4().hex
    if definition is not None:
        try:  # the function takes (ctx, **params): refuse params it cannot take, now
            inspect.signature(definition.fn).bind(None, **(params or {}))
        except TypeError as exc:
            raise WorkflowError(
                f"workflow {name!r}: params do not fit {definition.fn.__qualname__}: {exc}"
            ) from None
    encoded = encode_json(dict(params or {}), what=f"workflow {name!r}: params")
    spec = app.plan(
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
    app: Stem,
    name: str,
    params: Mapping[str, Any] | None,
    *,
    run_id: str | None = None,
    connection: psycopg.Connection[Any] | None = None,
) -> WorkflowRun:
    """Create a run and its first job (in ``connection``'s transaction when given)."""
    from stem_pg.client.enqueue import insert_sync

    if app.workflows.get(name) is None and app.registry.get(name) is not None:
        raise WorkflowError(f"{name!r} is a task, not a workflow; enqueue it with app.enqueue")
    run, spec = plan_run(app, name, params, run_id=run_id)

    def write(conn: psycopg.Connection[Any]) -> None:
        if WorkflowRunStore(app.queries).create_run(conn, run=run):
            insert_sync(conn, app.queries, [spec])

    if connection is not None:
        write(connection)
    else:
        with app.pool.connection() as conn, conn.transaction():
            write(conn)
    app.wake([spec], connection)
    return WorkflowRun(app, run.id)


def emit(app: Stem, topic: str, payload: Any = None) -> int:
    """Deliver ``payload`` to every run waiting on ``topic``; returns how many it reached."""
    if not isinstance(topic, str) or not topic:
        raise WorkflowError(f"an event topic must be a non-empty string, got {topic!r}")
    encoded = encode_json(payload, what=f"event {topic!r}: payload")
    store = WorkflowRunStore(app.queries)
    with app.pool.connection() as conn, conn.transaction():
        run_ids = store.emit(conn, topic=topic, payload=encoded)
        if run_ids:
            store.wake(conn, run_ids=run_ids)
    return len(run_ids)


def cancel(app: Stem, run_id: str, reason: str | None = None) -> list[str]:
    """Cancel a run and its unfinished children; returns the runs cancelled (none if it had ended).

    Their waiting jobs are cancelled and running ones terminated (a revoke), and a
    parent waiting for a cancelled child wakes up to see it.
    """
    from stem_pg.client.control import Control

    why = reason or "cancelled"
    store = WorkflowRunStore(app.queries)
    with app.pool.connection() as conn, conn.transaction():
        runs = store.cancel(conn, run_id=run_id, reason=why)
        parents = parents_to_wake(runs)
        if parents:
            store.wake(conn, run_ids=parents)
    jobs = [run.job_id for run in runs]
    if jobs:
        Control(app.url, app.namespace, result_ttl=app.result_ttl).revoke(
            jobs, terminate=True, reason=f"workflow run cancelled: {why}", timeout=None
        )
    return sorted({run.id for run in runs})


def parents_to_wake(cancelled: list[CancelledRun]) -> list[str]:
    """The parents of cancelled runs that were not cancelled with them: they wait for a child."""
    ids = {run.id for run in cancelled}
    return sorted({r.parent_run_id for r in cancelled if r.parent_run_id and r.parent_run_id not in ids})


def rewind(app: Stem, run_id: str, step: str) -> int:
    """Run ``run_id`` again from ``step``: that checkpoint and the later ones are dropped.

    Refused while a job is executing the run. Returns how many checkpoints were dropped.
    """
    store = WorkflowRunStore(app.queries)
    with app.pool.connection() as conn, conn.transaction():
        run = store.load_run(conn, run_id=run_id)
        if run is None:
            raise WorkflowError(f"no workflow run {run_id!r} in namespace {app.namespace!r}")
        steps = store.list_steps(conn, run_id=run_id)
        seq = {s.step: s.seq for s in steps}.get(step)
        if seq is None:
            known = ", ".join(s.step for s in steps) or "none yet"
            raise WorkflowError(f"run {run_id} has no checkpoint {step!r} (it has: {known})")
        next_job = job_id_for(run_id, run.resumes + 1)
        rewound = store.rewind(conn, run_id=run_id, seq=seq, next_job_id=next_job)
    if not rewound.rewound:
        raise WorkflowError(f"run {run_id} is executing right now; cancel it or wait, then rewind")
    app.waker.request([run.queue])  # its new job is due now
    return rewound.dropped


class WorkflowRun:
    """A handle on one run: ``status()``, ``steps()``, and ``get()`` / ``wait()`` for its result."""

    def __init__(self, app: Stem, run_id: str) -> None:
        self.app = app
        self.id = run_id

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.id}>"

    def status(self) -> dict[str, Any] | None:
        """The run's row of the ``workflow_runs`` view, or None if there is no such run."""
        with self.app.pool.connection() as conn:
            run = WorkflowRunStore(self.app.queries).show_run(conn, run_id=self.id)
        return None if run is None else asdict(run)

    def steps(self) -> list[dict[str, Any]]:
        """The run's checkpoints (``workflow_steps``), in order."""
        with self.app.pool.connection() as conn:
            steps = WorkflowRunStore(self.app.queries).list_steps(conn, run_id=self.id)
        return [asdict(step) for step in steps]

    def get(self, timeout: float | None = None) -> Any:
        """Block until the run ends; its result, or WorkflowFailed / WorkflowCancelled.

        Raises TimeoutError after ``timeout`` seconds (the run goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = Identifier(self.app.queries.channels.done)
        with self.app.pool.connection() as conn:
            conn.execute(SQL("LISTEN {}").format(channel))
            try:
                while True:
                    row = WorkflowRunStore(self.app.queries).outcome(conn, run_id=self.id)
                    if self._ended(row):
                        return _outcome(self.id, row)
                    wait_for_mention(conn, self.id, deadline, late=self._late, recheck=RECHECK)
            finally:
                conn.execute(SQL("UNLISTEN {}").format(channel))

    async def wait(self, timeout: float | None = None) -> Any:
        """The async twin of ``get()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = Identifier(self.app.queries.channels.done)
        async with (await self.app.apool()).connection() as conn:
            await conn.execute(SQL("LISTEN {}").format(channel))
            try:
                while True:
                    row = await AsyncWorkflowRunStore(self.app.queries).outcome(conn, run_id=self.id)
                    if self._ended(row):
                        return _outcome(self.id, row)
                    await await_mention(conn, self.id, deadline, late=self._late, recheck=RECHECK)
            finally:
                await conn.execute(SQL("UNLISTEN {}").format(channel))

    def _ended(self, row: RunOutcome | None) -> TypeGuard[RunOutcome]:
        if row is None:
            raise WorkflowError(f"no workflow run {self.id!r} in namespace {self.app.namespace!r}")
        return RunStatus(row.status).is_final

    @property
    def _late(self) -> str:
        return f"workflow run {self.id} did not end in time"


def _outcome(run_id: str, row: RunOutcome) -> Any:
    if row.status == RunStatus.COMPLETED:
        return row.result
    if row.status == RunStatus.CANCELLED:
        raise WorkflowCancelled(f"workflow run {run_id} was cancelled: {row.error}")
    raise WorkflowFailed(run_id, row.error)
