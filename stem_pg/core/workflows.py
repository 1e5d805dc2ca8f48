"""Workflow definitions, run statuses, step kinds and canvas states: the workflow model
and the state machines as data.

Who moves a run out of each status:

* ``running``   - the job that runs it: to ``suspended`` (sleep, await_event, a child
  run), to ``completed`` / ``failed`` / ``cancelled`` when that job finishes
  (the ``jobs_done`` trigger, in the job's own transaction); ``stem wf cancel``
  and the run's own time limits (to ``cancelled``).
* ``suspended`` - a wake-up: its resume job comes due (sleep over, event
  deadline, time limit), ``emit`` delivers its event, its child run ends
  (to ``running``, when the resume job starts); cancel (to ``cancelled``); its
  resume job ends without starting it (revoked or expired: ``cancelled``;
  dead-lettered: ``failed``). The ``jobs_done`` guard admits ``completed`` too,
  though a resume job can only succeed after it made the run ``running``.
* ``failed``    - a dead-letter replay of its job runs it again (to ``running``);
  ``stem wf rewind`` (to ``running``).
* ``completed``, ``cancelled`` - ``stem wf rewind`` only (to ``running``).

``RUN_TRANSITIONS`` is exactly what the guards of those statements allow: a test
reads them from ``sql/*.sql`` and the migrated database functions.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from stem_pg.core.durations import MAX_DURATION, MAX_DURATION_TEXT, parse_duration
from stem_pg.core.errors import StemError

Seconds = float | timedelta | str | None


class RunStatus(StrEnum):
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUSPENDED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.SUSPENDED: frozenset(
        {RunStatus.RUNNING, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.COMPLETED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING}),
}


class StepKind(StrEnum):
    """What a checkpoint in ``wf_steps`` records."""

    STEP = "step"
    SLEEP = "sleep"
    EVENT = "event"
    CHILD = "child"


class CanvasKind(StrEnum):
    CHAIN = "chain"
    GROUP = "group"
    CHORD = "chord"


class CanvasState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class MemberState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Job headers that tie a job to a canvas member or a workflow run. Jobs that carry
#: one always keep their result (the trigger that advances them reads it).
CANVAS_HEADER = "stem-canvas"
WORKFLOW_HEADER = "stem-workflow"


class WorkflowError(StemError):
    """A workflow call was refused: unknown workflow or run, bad parameters, a run that cannot be rewound."""


@dataclass(frozen=True)
class WorkflowOptions:
    """``@app.workflow(...)`` settings besides the task options of its jobs."""

    max_run_time: float | None = None
    max_suspended_time: float | None = None


@dataclass(frozen=True)
class WorkflowDefinition:
    """A registered workflow: its name, its ``async def`` and its time limits. The task
    options of the jobs that run it are in the task registry under the same name."""

    name: str
    fn: Callable[..., Any]
    options: WorkflowOptions


def seconds(value: Seconds, *, what: str) -> float | None:
    """A positive duration from seconds, a timedelta or a string like ``5m``; None stays None.

    Raises WorkflowError naming ``what`` for anything else.
    """
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
    if number > MAX_DURATION:
        raise WorkflowError(f"{what}: {value!r} is longer than the maximum, {MAX_DURATION_TEXT}")
    return float(number)


def build_definition(name: str, fn: Callable[..., Any], options: WorkflowOptions) -> WorkflowDefinition:
    """A definition of ``fn``; raises WorkflowError unless it is an ``async def``."""
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
