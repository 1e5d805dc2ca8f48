"""The worker's heartbeat: extends the leases of the jobs it holds, stops the ones whose
lease it lost, and tells the workers table it is alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.context import Inflight
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
        self.wanted = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def wake_threadsafe(self) -> None:
        """Beat soon; callable from a handler's thread."""
        self._loop.call_soon_threadsafe(self.wanted.set)

    async def run_once(self, conn: AsyncConn) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wanted.wait(), self.interval())
        self.wanted.clear()
        held = [*self.state.inflight.values(), *self.unflushed.values()]
        if held:
            alive = await self.jobs.extend_leases(
                conn,
                ids=[e.job.id for e in held],
                tokens=[e.token for e in held],
                seconds=[e.lease_seconds for e in held],
                progress=[e.progress for e in held],
            )
            self._mark_lost(held, alive)
        await self.workers.heartbeat(conn, worker_id=self.state.id)
        self.state.last_heartbeat_at = datetime.now(UTC)
        await asyncio.sleep(min(LEASE_WAKE_THROTTLE, self.interval() / 2))

    def interval(self) -> float:
        """A third of the shortest lease held (a task may set a short visibility_timeout)."""
        lease = self.state.settings.lease_seconds
        shortest = min((e.lease_seconds for e in self.state.inflight.values()), default=lease)
        return max(0.2, min(lease, shortest, 3 * HEARTBEAT_MAX_INTERVAL) / 3)

    def _mark_lost(self, asked: list[Inflight], alive: set[str]) -> None:
        """Stop jobs whose lease the heartbeat could not extend. Only the jobs it asked
        about count: jobs claimed while it ran were not part of the question."""
        inflight = self.state.inflight
        for entry in asked:
            job_id = entry.job.id
            if job_id not in alive and not entry.lost and inflight.get(job_id) is entry:
                log.warning("worker %s: lost the lease of task %s; stopping it", self.state.id, job_id)
                entry.lost = True
                if entry.task is not None and entry.started:
                    entry.task.cancel()
