"""Workflow run statuses, step kinds and canvas states: the state machines as data.

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

from enum import StrEnum


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
