"""The claim made by the flush: outcomes written and the next jobs leased in one commit.

A worker draining a backlog otherwise spends two durable commits per round: the flush
that writes a batch of outcomes, and the claim loop's claim into the slots they freed,
each on its own connection. When the flush finds free slots, it claims into them in the
pipelined transaction that writes the outcomes (``OutcomeFlusher._write_and_claim``):
one commit and one round trip for both, as durable as before (both were durable commits;
the claim still is one: ``job_claim`` sets it). The slots it claims are reserved from the
moment the claim is sent until its transaction ends, so the claim loop, woken by the same
finished jobs, does not claim them too.

The plain claim only: a worker with limited queues keeps the limited claim's own claim in
the flush (stem_pg.worker.limited), and a worker subscribed to broadcast channels keeps
claiming in the claim loop, which takes broadcast messages before jobs (the flush taking
every free slot would starve them).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.jobs import JobStore
from stem_pg.worker.limited import LimitedClaims
from stem_pg.worker.settings import WorkerSettings


class FlushClaims:
    """The flusher's ``ClaimInFlush``: the limited claim's, when it wants one; else the plain
    claim of the worker's queues in turn, into every free slot."""

    def __init__(
        self,
        jobs: JobStore,
        limited: LimitedClaims,
        settings: WorkerSettings,
        claimed: Callable[[str, int, float], None],
        wake_claimer: Callable[[], None],
    ) -> None:
        """``limited`` is bound to the worker already (``LimitedClaims.bind``): its free slots
        (the reserved ones not counted), how it starts a claimed job, the task names it
        claims and its lease epoch serve this claim too. ``claimed`` is told of each claim
        (queue, jobs, seconds); ``wake_claimer`` wakes the claim loop."""
        self.jobs = jobs
        self.limited = limited
        self.queues = list(settings.queues)
        self.worker_id = settings.worker_id
        self.lease_seconds = settings.lease_seconds
        #: Off with limited queues or broadcast channels (see the module's docstring).
        self.enabled = settings.claim_in_flush and not settings.broadcasts and not limited.queues
        self.claimed, self.wake_claimer = claimed, wake_claimer
        #: Slots a claim in a flush was sent for and whose transaction has not ended.
        self.reserved = 0
        self._rotation = 0
        self._plain = False  # whether the claim under way is the plain one

    def claim_wanted(self) -> bool:
        """The limited claim wants to claim in this flush, or (the plain claim) a slot is free."""
        self._plain = False
        if self.limited.claim_wanted():
            return True
        if not self.enabled or self.limited.free() <= 0:
            return False
        if self.limited.claiming:
            # Not while the claim loop claims (it counted these slots free when it sent its
            # claim): it claims again once done, as the finished jobs did not wake it.
            self.wake_claimer()
            return False
        self._plain = True
        return True

    async def claim_in_flush(self, conn: AsyncConn) -> Callable[[], Awaitable[None]]:
        if not self._plain:
            return await self.limited.claim_in_flush(conn)
        limit, token = self.limited.free(), str(uuid.uuid4())
        self._rotation = (self._rotation + 1) % len(self.queues)
        queue = self.queues[self._rotation]
        sent, epoch, began = time.monotonic(), self.limited.lease_epoch(), time.perf_counter()
        self.reserved += limit
        cur = await self.jobs.send_claim(
            conn,
            queue=queue,
            limit=limit,
            worker_id=self.worker_id,
            token=token,
            lease_seconds=self.lease_seconds,
            tasks=self.limited.tasks(),
        )

        async def committed() -> None:
            try:
                jobs = await self.jobs.read_claim(cur)
            finally:
                self.reserved -= limit
            for job in jobs:
                self.limited.start(job, token, sent, epoch)
            self.claimed(queue, len(jobs), time.perf_counter() - began)
            if len(jobs) < limit and len(self.queues) > 1:
                self.wake_claimer()  # the other queues: the claim loop takes them in turn

        return committed

    def claim_abandoned(self) -> None:
        """The flush's transaction failed: nothing was claimed, the reserved slots are free
        (and the claim loop, which may have found none, claims into them)."""
        if self._plain and self.reserved:
            self.reserved = 0
            self.wake_claimer()
