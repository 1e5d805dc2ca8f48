"""Task states and the transitions between them: the state machine as data.

Live states are rows of ``jobs``; terminal states are rows of ``results``.
``TRANSITIONS`` is exactly what the SQL does: tests/unit/test_state_transitions.py
reads every statement that changes a job's state (sql/*.sql and the migrations)
and fails when one makes a move the table lacks or the table holds a move no
statement makes. Who moves a task out of each state (query names in sql/jobs.sql
and sql/control.sql):

* ``queued``   - a worker's claim, ``job_claim`` (→ running); a revoke, ``revoke_apply``
  (→ cancelled); a worker's expiry sweep, ``job_cancel_expired`` (→ cancelled).
* ``retried``  - the same moves as ``queued`` (the claim waits for ``not_before`` in both).
* ``running``  - the worker that holds the lease: ``job_finish`` (→ succeeded, failed,
  cancelled), ``job_retry`` (→ retried), ``job_release`` at shutdown for jobs it never
  started (→ queued, or retried if an earlier attempt ran), ``job_give_back`` when it stops
  holding jobs (→ retried if interrupted, else as ``job_release``); any worker's rescuer,
  ``job_rescue_expired``, when the lease expires (→ retried, failed).
* ``succeeded``, ``failed``, ``cancelled`` - nobody: terminal. A dead-letter
  replay enqueues the task again as a new ``queued`` row.

New jobs start ``queued`` (enqueue, beat, canvases, workflows, dead-letter replay).
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRIED = "retried"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


LIVE_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.RETRIED})
TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

#: For each state, the states a job may move to from it (checked against the SQL).
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.CANCELLED}),
    TaskState.RETRIED: frozenset({TaskState.RUNNING, TaskState.CANCELLED}),
    TaskState.RUNNING: frozenset(
        {
            TaskState.SUCCEEDED,
            TaskState.FAILED,
            TaskState.RETRIED,
            TaskState.CANCELLED,
            TaskState.QUEUED,
        }
    ),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class DeadLetterReason(StrEnum):
    """Why a job ended in the dead-letter table (mirrored by a CHECK constraint)."""

    MAX_RETRIES_EXCEEDED = "max_retries_exceeded"
    UNREGISTERED_TASK = "unregistered_task"
    REJECTED = "rejected"
    LEASE_EXPIRED = "lease_expired"
    #: Under payload signing: unsigned, signed with an unknown key, or tampered with (never run).
    SIGNATURE_INVALID = "signature_invalid"
    #: The job's arguments do not fit the handler's signature (never run; retrying cannot help).
    BAD_ARGUMENTS = "bad_arguments"
