"""Worker settings, checked once so a bad flag fails before any connection opens."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from stem_pg.core.errors import ConfigError

CONNECTION_MODES = ("minimal", "per-loop")
EVENT_LOOPS = ("asyncio", "uvloop")


def default_worker_id() -> str:
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerSettings:
    """How one worker process consumes its queues.

    ``prefetch_multiplier`` x ``concurrency`` jobs may be leased at once; the
    extra ones wait in the process for a free slot, ready to start at once.
    """

    queues: tuple[str, ...]
    concurrency: int = 10
    #: Broadcast channels to subscribe to (their messages share the concurrency slots).
    broadcasts: tuple[str, ...] = ()
    prefetch_multiplier: int = 2
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    shutdown_grace: float = 30.0
    maintenance_interval: float = 5.0
    prune_interval: float = 60.0
    #: Seconds a worker stays in the workers table once gone (stopped, or silent that long):
    #: ``stem worker status`` lists it as gone until the maintenance pass forgets it.
    worker_retention: float = 7 * 24 * 3600.0
    #: Vacuum the jobs table from the maintenance pass when dead rows pile up (worker/vacuum.py).
    vacuum: bool = True
    #: Retire the process (the supervisor replaces it) after it started this many tasks.
    max_tasks_per_child: int | None = None
    #: Retire the process when its resident memory exceeds this many KiB after a task.
    max_memory_per_child: int | None = None
    worker_id: str = field(default_factory=default_worker_id)
    #: Seconds between the INFO lines that count what was processed (0: no such line).
    summary_interval: float = 60.0
    #: Claim jobs of any task, and dead-letter those not registered here (``unregistered_task``),
    #: as workers did before; by default a worker claims only the task names it registers.
    claim_unregistered: bool = False
    #: ``minimal``: LISTEN on one connection, the other loops sharing a second in turns;
    #: ``per-loop``: a connection per loop (six) (stem_pg.worker.connections).
    connections: str = "minimal"
    #: ``asyncio`` (the standard library's loop) or ``uvloop`` (libuv's; the ``uvloop`` extra).
    event_loop: str = "asyncio"
    #: The flush claims into the slots it frees, in its transaction (stem_pg.worker.flush_claim):
    #: opt-in until it is shown to drain faster (bench/RESULTS.md, "The raw-SQL ceiling").
    claim_in_flush: bool = False

    def __post_init__(self) -> None:
        if not self.queues:
            raise ConfigError("a worker needs at least one queue")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.prefetch_multiplier < 1:
            raise ConfigError(f"--prefetch-multiplier must be at least 1, got {self.prefetch_multiplier}")
        positive = ("lease_seconds", "poll_interval", "maintenance_interval", "prune_interval")
        for name in (*positive, "worker_retention"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        for flag, value in (
            ("--max-tasks-per-child", self.max_tasks_per_child),
            ("--max-memory-per-child", self.max_memory_per_child),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{flag} must be a whole number of at least 1, got {value!r}")
        if not self.summary_interval >= 0:
            raise ConfigError(f"--log-summary-interval must be >= 0, got {self.summary_interval!r}")
        if self.connections not in CONNECTION_MODES:
            raise ConfigError(f"--connections must be minimal or per-loop, got {self.connections!r}")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigError(f"--event-loop must be asyncio or uvloop, got {self.event_loop!r}")
        if self.shutdown_grace < 0:
            raise ConfigError(f"shutdown grace must be >= 0, got {self.shutdown_grace}")

    @property
    def capacity(self) -> int:
        return self.concurrency * self.prefetch_multiplier

    @property
    def heartbeat_interval(self) -> float:
        return max(0.2, self.lease_seconds / 3)
