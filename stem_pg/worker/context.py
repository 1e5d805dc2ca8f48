"""What a running handler sees (TaskContext) and what the worker tracks per leased job."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

from stem_pg.core.envelope import encode_json
from stem_pg.core.errors import StemError
from stem_pg.core.routing_registry import RoutingInfo, RoutingRegistry
from stem_pg.core.tasks import Retry
from stem_pg.db.stores.rows import ClaimedJob


class SoftTimeLimitExceeded(StemError):
    """Raised at a checkpoint (``heartbeat()``/``progress()``) once the soft time limit passed."""


class LeaseLost(StemError):
    """Raised at a checkpoint when this worker no longer holds the job's lease."""


class TaskRevoked(StemError):
    """Raised at a checkpoint once the task was revoked with ``terminate``."""


@dataclass(slots=True)
class Inflight:
    """A leased job inside the worker, from claim until its outcome is flushed."""

    job: ClaimedJob
    token: str
    lease_seconds: float
    started: bool = False
    started_at: float = 0.0
    lost: bool = False
    #: When the lease ends at the earliest, on the worker's monotonic clock: the send time
    #: of the claim or extension the database last acknowledged, plus its seconds ...
    lease_deadline: float = math.inf
    #: ... and the last moment the job may start on it (stem_pg.core.leases.start_by).
    start_by: float = math.inf
    #: ``WorkerState.lease_epoch`` when that happened: behind it, a connection failed since.
    lease_epoch: int = 0
    #: The sync handler of this attempt still runs in its thread (even once the attempt ended).
    thread_running: bool = False
    progress: str | None = None
    soft_deadline: float | None = None
    #: Set (to the cancellation message) when the task is revoked with terminate.
    revoked: str | None = None
    #: Set when the worker stops it on its way out: the job is given back (stem_pg.worker.shutdown).
    interrupted: bool = False
    #: The runner task (stem_pg.worker.slots) while the job runs: cancel it to stop the job.
    task: asyncio.Task[Any] | None = field(default=None, repr=False)

    def drop_args(self) -> None:
        """Forget the job's arguments once its attempt has ended: nothing reads them after
        that, but the entry lives on until its outcome is flushed, and with large payloads
        a batch of finished jobs would otherwise hold a batch of payloads (issue 20)."""
        if self.job.args is not None:
            self.job = self.job._replace(args=None)


class TaskContext:
    """Passed to handlers that ask for it (a parameter typed TaskContext, or named ``ctx``).

    ``heartbeat()`` and ``progress()`` are checkpoints: safe from threads and
    the event loop alike, they never block, and they raise when the job should
    stop (soft time limit passed, lease lost, revoked with terminate).
    """

    def __init__(
        self, entry: Inflight, worker_id: str, wake_leases: Any, routing: RoutingRegistry | None = None
    ) -> None:
        self._entry = entry
        self._wake_leases = wake_leases
        self._routing = routing
        self.worker_id = worker_id

    @property
    def task_id(self) -> str:
        return self._entry.job.id

    @property
    def task(self) -> str:
        return self._entry.job.task

    @property
    def queue(self) -> str:
        return self._entry.job.queue

    @property
    def priority(self) -> int:
        return self._entry.job.priority

    @property
    def routing(self) -> RoutingInfo:
        """Where this job was routed: queue (None for a broadcast message), priority,
        broadcast channel, and the read-only ``meta`` the routing file gives them."""
        routing = self._routing if self._routing is not None else RoutingRegistry()
        return routing.info(self._entry.job.queue, self._entry.job.priority)

    @property
    def lease_token(self) -> str:
        """This attempt's lease token: a fencing token for what the handler writes."""
        return self._entry.token

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self._entry.job.attempts

    @property
    def max_retries(self) -> int:
        return self._entry.job.max_retries

    @property
    def headers(self) -> dict[str, Any]:
        return self._entry.job.headers or {}

    @property
    def revoked(self) -> bool:
        """True once the task was revoked with terminate (the next checkpoint raises)."""
        return self._entry.revoked is not None

    def heartbeat(self) -> None:
        """Say the handler is alive; raises if it should stop."""
        self._checkpoint()

    def extend_lease(self, seconds: float) -> None:
        """Hold the job for ``seconds`` from now on every heartbeat (for long handlers)."""
        if not seconds > 0:
            raise ValueError(f"extend_lease needs a positive number of seconds, got {seconds!r}")
        self._entry.lease_seconds = float(seconds)
        self._wake_leases()
        self._checkpoint()

    def progress(self, value: Any) -> None:
        """Record JSON progress (visible in ``stem tasks show``); a checkpoint too."""
        self._entry.progress = encode_json(value, what="progress")
        self._wake_leases()
        self._checkpoint()

    def retry(self, countdown: float | None = None, exc: BaseException | None = None) -> NoReturn:
        """Stop this attempt and run again after ``countdown`` seconds (default: backoff)."""
        raise Retry(countdown=countdown, exc=exc)

    def _checkpoint(self) -> None:
        if self._entry.revoked is not None:
            raise TaskRevoked(f"task {self.task_id}: {self._entry.revoked}")
        if self._entry.lost:
            raise LeaseLost(f"task {self.task_id}: this worker lost its lease")
        deadline = self._entry.soft_deadline
        if deadline is not None and time.monotonic() > deadline:
            raise SoftTimeLimitExceeded(f"task {self.task_id}: soft time limit exceeded")
