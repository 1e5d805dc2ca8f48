"""Typed rows of the workflow run store (``sql/workflows.sql``), and the inputs it takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class NewRun:
    """A run to create (``wf_run_create``); ``params`` is JSON text, the limits are seconds."""

    id: str
    workflow: str
    params: str
    queue: str
    priority: int
    max_retries: int
    job_id: str
    parent_run_id: str | None
    parent_step: str | None
    max_run_time: float | None
    max_suspended: float | None


@dataclass(frozen=True)
class RunLease:
    """Proof that a job still runs a run: every write of the worker side is guarded by it,
    so a worker that lost its job's lease changes nothing."""

    run_id: str
    job_id: str
    token: str


@dataclass(frozen=True)
class RunRecord:
    """A run as the job about to execute it reads it (``wf_run_load``)."""

    id: str
    workflow: str
    params: dict[str, Any]
    status: str
    job_id: str
    resumes: int
    parent_run_id: str | None
    deadline_at: datetime | None
    max_suspended: float | None
    suspended_at: datetime | None
    wake_at: datetime | None
    waiting_for: str | None
    created_at: datetime
    queue: str


@dataclass(frozen=True)
class Checkpoint:
    """One entry of a run's ledger: what a step, sleep, event or child recorded."""

    step: str
    kind: str
    output: Any
    error: str | None


@dataclass(frozen=True)
class RunOutcome:
    """Where a run stands, for whoever waits for it (a parent run, ``WorkflowRun.get``)."""

    status: str
    result: Any
    error: str | None


@dataclass(frozen=True)
class Waiter:
    """A registered ``await_event``: its deadline, if it has one."""

    deadline_at: datetime | None


@dataclass(frozen=True)
class CancelledRun:
    """A run ``wf_cancel`` ended; its job is to be revoked and its parent woken."""

    id: str
    job_id: str
    parent_run_id: str | None
    told: int


@dataclass(frozen=True)
class Rewound:
    """``wf_rewind``: whether the run was rewound (0: a job is executing it) and how many
    checkpoints were dropped."""

    rewound: int
    dropped: int


@dataclass(frozen=True)
class RunView:
    """One row of the ``workflow_runs`` view."""

    id: str
    workflow: str
    status: str
    params: dict[str, Any]
    result: Any
    error: str | None
    parent_run_id: str | None
    parent_step: str | None
    waiting_for: str | None
    wake_at: datetime | None
    job_id: str
    resumes: int
    steps_done: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class StepView:
    """One row of the ``workflow_steps`` view."""

    run_id: str
    step: str
    kind: str
    seq: int
    output: Any
    error: str | None
    job_id: str | None
    attempt: int | None
    finished_at: datetime


@dataclass(frozen=True)
class WaiterView:
    """A run waiting for an event, as ``stem wf waiters`` lists it."""

    topic: str
    run_id: str
    workflow: str
    step: str
    deadline_at: datetime | None
    created_at: datetime
