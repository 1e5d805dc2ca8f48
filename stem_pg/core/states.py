"""Task states and the transitions between them: the state machine as data.

Live states are rows of ``jobs``; terminal states are rows of ``results``.
Who moves a task out of each state:

* ``queued``   - a worker's claim (→ running); expiry or revoke (→ cancelled).
* ``retried``  - a worker's claim once ``not_before`` passes (→ running); revoke (→ cancelled).
* ``running``  - the worker that holds the lease (→ succeeded, failed, retried,
  cancelled); the rescuer when the lease expires (→ retried, failed); a worker
  shutting down releases jobs it never started (→ queued).
* ``succeeded``, ``failed``, ``cancelled`` - nobody: terminal. A dead-letter
  replay enqueues the task again as a new ``queued`` row.
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


def can_transition(source: TaskState, target: TaskState) -> bool:
    """Whether the state machine allows ``source`` → ``target``."""
    return target in TRANSITIONS[source]


class DeadLetterReason(StrEnum):
    """Why a job ended in the dead-letter table (mirrored by a CHECK constraint)."""

    MAX_RETRIES_EXCEEDED = "max_retries_exceeded"
    UNREGISTERED_TASK = "unregistered_task"
    REJECTED = "rejected"
    LEASE_EXPIRED = "lease_expired"
