"""The worker's heartbeat: extends the leases of the jobs it holds, stops the ones whose
lease it lost, and tells the workers table it is alive (in the same statement, the
namespace's heartbeat topic hears it too: ``stem_pg.core.heartbeats``).

After any connection failure (``connection_lost``) it extends every held lease again as
soon as it has a connection: a lease it cannot extend is lost (logged by task id, the job
stopped), and until then no held job starts (``stem_pg.worker.leases``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from stem_pg.core.logs import job_fields
from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.context import Inflight
from stem_pg.worker.leases import leased
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)

LEASE_WAKE_THROTTLE = 0.5
#: The workers-table heartbeat runs at least this often, whatever the lease: broadcast
#: fan-out and ``stem worker status`` judge liveness by it.
HEARTBEAT_MAX_INTERVAL = 10.0


class Heartbeat:
    """One beat per ``run_once``: at a third of the shortest lease held, or sooner when
    ``wanted`` is set (a short lease was claimed, a handler reported progress)."""

    def __init__(
        self,
        jobs: JobStore,
        workers: WorkerStore,
        state: WorkerState,
        *,
        unflushed: Mapping[str, Inflight],
    ) -> None:
        self.jobs = jobs
        self.workers = workers
        self.state = state
        #: Jobs that ended but whose outcome is not written yet: their leases are held too.
        self.unflushed = unflushed
        #: Told how many leases each extension extended and how many it found lost (the metrics).
        self.on_checked: Callable[[int, int], None] | None = None
        self.wanted = asyncio.Event()
        self._revalidate = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def connection_lost(self) -> None:
        """A connection of the worker failed (the server may have restarted and lost what
        it acknowledged): every lease is unconfirmed until the next beat extends it."""
        self.state.lease_epoch += 1
        self.wanted.set()
        self._revalidate.set()

    def wake_threadsafe(self) -> None:
        """Beat soon; callable from a handler's thread."""
        self._loop.call_soon_threadsafe(self.wanted.set)

    async def run_once(self, conn: AsyncConn) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval()):  # not wait_for: see control.run_once
                await self.wanted.wait()
        self.wanted.clear()
        self._revalidate.clear()
        held = [*self.state.inflight.values(), *self.unflushed.values()]
        if held:
            seconds = [e.lease_seconds for e in held]
            sent, epoch = time.monotonic(), self.state.lease_epoch
            alive = await self.jobs.extend_leases(
                conn,
                ids=[e.job.id for e in held],
                tokens=[e.token for e in held],
                seconds=seconds,
                progress=[e.progress for e in held],
            )
            for entry, lease in zip(held, seconds, strict=True):
                if entry.job.id in alive:
                    leased(entry, sent=sent, epoch=epoch, seconds=lease)
            self._mark_lost(held, alive)
        await self.workers.heartbeat(conn, beat=self.state.beat())
        self.state.last_heartbeat_at = datetime.now(UTC)
        with contextlib.suppress(TimeoutError):  # unless a connection failed meanwhile: beat again at once
            async with asyncio.timeout(min(LEASE_WAKE_THROTTLE, self.interval() / 2)):
                await self._revalidate.wait()

    def interval(self) -> float:
        """A third of the shortest lease held (a task may set a short visibility_timeout)."""
        lease = self.state.settings.lease_seconds
        shortest = min((e.lease_seconds for e in self.state.inflight.values()), default=lease)
        return max(0.2, min(lease, shortest, 3 * HEARTBEAT_MAX_INTERVAL) / 3)

    def _mark_lost(self, asked: list[Inflight], alive: set[str]) -> None:
        """Stop jobs whose lease the heartbeat could not extend. Only the jobs it asked
        about count: jobs claimed while it ran were not part of the question."""
        inflight = self.state.inflight
        lost = 0
        for entry in asked:
            job_id = entry.job.id
            if job_id not in alive and not entry.lost and inflight.get(job_id) is entry:
                entry.lost = True
                lost += 1
                if entry.task is not None and entry.started:
                    entry.task.cancel()  # a sync handler stops at its next checkpoint
                log.warning(
                    "worker %s: lost the lease of task %s (another worker may run it); %s",
                    self.state.id,
                    job_id,
                    "stopping it" if entry.started else "it will not start here",
                    extra={**job_fields(entry.job), "event": "lease_lost"},
                )
        if self.on_checked is not None:
            self.on_checked(len(alive), lost)
