"""Typed rows the stores return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class ClaimedJob(NamedTuple):
    """A job a worker leased; ``token`` proves the lease in every later update.

    A NamedTuple, like Finish: the worker makes one per job, and a frozen dataclass
    costs several times as much to build.
    """

    id: str
    task: str
    queue: str
    priority: int
    args: dict[str, Any] | None  # None: no arguments (the claim sends NULL for '{}')
    headers: dict[str, Any] | None  # None: no headers (likewise)
    attempts: int
    max_retries: int
    expires_at: datetime | None
    visibility_timeout: int | None
    acks_late: bool
    #: The ``stem-signature`` header, taken out of ``headers`` by the claim (payload signing).
    signature: str | None = None
    #: Seconds the job waited ready before this claim: since its enqueue, or the end of its
    #: countdown or retry delay (the wait-time metric).
    waited: float = 0.0
    #: Bytes the arguments take in the table (``pg_column_size``: after compression): what
    #: sizes the next claim (stem_pg.db.stores.jobs.ClaimSizer). 0 from the limited claims.
    args_size: int = 0


@dataclass(frozen=True)
class TaskStatus:
    """A task's state, live or finished (the ``task_states`` view), and its details.

    ``task_status`` (what applications poll) reads the view's columns only, so the
    details from ``result`` on stay None; ``task_show`` (``stem tasks show``) fills
    them from the result row and the live job.
    """

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
    result: Any = None
    traceback: str | None = None
    args: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    not_before: datetime | None = None
    lease_expires_at: datetime | None = None
    progress: Any = None


@dataclass(frozen=True)
class StoredResult:
    id: str
    task: str
    queue: str
    priority: int
    state: str
    result: Any
    error: str | None
    traceback: str | None
    attempts: int
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime
    worker_id: str | None


@dataclass(frozen=True)
class RescueCount:
    requeued: int
    failed: int
    notified: object = None


@dataclass(frozen=True)
class GivenBack:
    """What ``job_give_back`` did: interrupted jobs retried, unstarted ones released."""

    retried: int
    released: int


class Finish(NamedTuple):
    """A terminal outcome: succeeded, failed or cancelled, optionally dead-lettered.

    The fields are in the order of job_finish's input rows (sql/jobs.sql), which
    receives a batch as a JSON array of these tuples.
    """

    id: str
    token: str
    state: str
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    dead_reason: str | None = None
    keep: bool = True


@dataclass(frozen=True)
class RetryLater:
    """Run again after ``delay`` seconds; ``error`` joins the job's history."""

    id: str
    token: str
    delay: float
    error: str


@dataclass(frozen=True)
class Release:
    """Give back a leased job that never started."""

    id: str
    token: str


Outcome = Finish | RetryLater | Release
