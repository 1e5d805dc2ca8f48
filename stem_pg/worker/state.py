"""What the parts of one worker share: its settings, the work it holds, what it counted,
and whether it is stopping. The Worker makes one and hands it to the parts that read it."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from stem_pg.core.heartbeats import Beat, Status
from stem_pg.worker.context import Inflight
from stem_pg.worker.settings import WorkerSettings


@dataclass(slots=True, eq=False)
class WorkerState:
    """One worker's shared state. ``inflight`` holds leased jobs from claim until their
    outcome is recorded, ``broadcast_inflight`` claimed broadcast messages by message id."""

    settings: WorkerSettings
    inflight: dict[str, Inflight] = field(default_factory=dict)
    broadcast_inflight: dict[int, Inflight] = field(default_factory=dict)
    #: Outcomes recorded, by kind (a final state, ``retried`` or ``released``).
    counts: Counter[str] = field(default_factory=Counter)
    started_monotonic: float = field(default_factory=time.monotonic)
    last_heartbeat_at: datetime | None = None
    #: Set once a stop was asked for: nothing new is claimed, waiting work is released.
    stopping: bool = False
    #: Counts connection failures: a lease last confirmed in an earlier epoch is not
    #: trusted (no job starts on it) until the heartbeat extends it again.
    lease_epoch: int = 0

    @property
    def id(self) -> str:
        return self.settings.worker_id

    def beat(self, status: Status = "alive") -> Beat:
        """What the heartbeat topic says about this worker now (``core.heartbeats``)."""
        counts = self.counts
        return Beat(
            worker=self.id,
            status=status,
            host=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.settings.concurrency,
            inflight=len(self.inflight) + len(self.broadcast_inflight),
            processed=counts["succeeded"] + counts["failed"] + counts["cancelled"],
            failed=counts["failed"],
            uptime=time.monotonic() - self.started_monotonic,
        )
