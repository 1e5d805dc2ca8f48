"""Typed rows the dashboard's store returns (one dataclass per query's columns)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class QueueRow:
    queue: str
    ready: int
    scheduled: int
    running: int
    oldest_ready_age: float | None
    finished_15m: int
    failed_15m: int
    failure_rate_15m: float | None
    wait_p95_5m: float | None
    run_p95_5m: float | None
    paused_at: datetime | None
    paused_by: str | None
    paused_reason: str | None


@dataclass(frozen=True)
class QueueSummary:
    """A queue as the overview shows it (``QueueRow`` without the latency percentiles)."""

    queue: str
    ready: int
    scheduled: int
    running: int
    oldest_ready_age: float | None
    finished_15m: int
    failed_15m: int
    paused_at: datetime | None


@dataclass(frozen=True)
class BucketRow:
    priority: int
    ready: int
    scheduled: int
    running: int


@dataclass(frozen=True)
class MinuteRow:
    queue: str
    minute: datetime
    finished: int
    failed: int
    wait: float | None


@dataclass(frozen=True)
class FailureRow:
    id: str
    task: str
    queue: str
    error: str | None
    attempts: int
    finished_at: datetime


@dataclass(frozen=True)
class JobFilter:
    """What the jobs page shows; None means "any". ``until`` and the page key both bound
    the enqueue time from above (the page starts strictly before the earlier of them)."""

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


@dataclass(frozen=True)
class JobRow:
    id: str
    task: str
    queue: str
    priority: int
    state: str
    attempts: int
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error: str | None


@dataclass(frozen=True)
class LiveJob:
    id: str
    task: str
    queue: str
    priority: int
    state: str
    args: dict[str, Any]
    headers: dict[str, Any]
    attempts: int
    max_retries: int
    enqueued_at: datetime
    not_before: datetime
    started_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str | None
    progress: Any
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class CanvasLink:
    canvas_id: str
    position: int
    kind: str
    state: str


@dataclass(frozen=True)
class RunningJob:
    worker_id: str | None
    id: str
    task: str
    queue: str
    started_at: datetime | None
    runtime: float | None


@dataclass(frozen=True)
class WorkerCounts:
    worker_id: str
    processed: int
    failed: int


@dataclass(frozen=True)
class RunRow:
    id: str
    workflow: str
    status: str
    waiting_for: str | None
    wake_at: datetime | None
    resumes: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunDetail:
    id: str
    workflow: str
    status: str
    params: Any
    result: Any
    error: str | None
    parent_run_id: str | None
    waiting_for: str | None
    wake_at: datetime | None
    deadline_at: datetime | None
    job_id: str
    resumes: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class StepRow:
    seq: int
    step: str
    kind: str
    output: Any
    error: str | None
    job_id: str | None
    attempt: int | None
    finished_at: datetime


@dataclass(frozen=True)
class CanvasRow:
    id: str
    kind: str
    size: int
    pending: int
    failed: int
    state: str
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class MemberRow:
    position: int
    task_id: str
    task: str
    state: str
    error: str | None
    enqueued_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class BroadcastRow:
    id: int
    task_id: str
    channel: str
    task: str
    delivery: str
    published_at: datetime
    deliveries: int
    delivered: int
    failed: int


@dataclass(frozen=True)
class DeliveryRow:
    worker_id: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
