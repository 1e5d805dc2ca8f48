"""The worker's side of broadcast channels: subscribe, claim its fan-out rows, run, ack.

Messages run through the same executor and concurrency slots as jobs, but
hold no lease: only this subscriber can run its rows. Whether a message runs
again after a crash depends on its delivery mode: at-least-once rows stay
``running`` until acked and go back to ``pending`` when the same worker id
starts again; at-most-once rows were marked ``delivered`` before they ran.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING

from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn
from stem_pg.db.stores.broadcasts import BroadcastAck, BroadcastStore, ClaimedBroadcast
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, Release, RetryLater
from stem_pg.worker.context import Inflight

if TYPE_CHECKING:
    from stem_pg.worker.worker import Worker

log = logging.getLogger(__name__)


class BroadcastConsumer:
    """Runs the broadcast messages fanned out to one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.channels = frozenset(worker.settings.broadcasts)
        self.store = BroadcastStore(worker.app.queries)
        self.acks: list[BroadcastAck] = []

    async def start(self, conn: AsyncConn) -> None:
        """Subscribe (exactly to this worker's channels) and take back what an earlier
        run of this worker id left unacked."""
        joined = await self.store.subscribe(conn, worker_id=self.worker.id, channels=sorted(self.channels))
        recovered = await self.store.recover(conn, worker_id=self.worker.id)
        if recovered or joined.replayed:
            log.warning(
                "worker %s: %d broadcast messages left unacked by an earlier run; %d replayed",
                self.worker.id,
                len(recovered),
                joined.replayed,
            )

    async def claim(self, conn: AsyncConn, free: int) -> int:
        """Claim and start up to ``free`` messages; returns how many."""
        if not self.channels or free <= 0:
            return 0
        claimed = await self.store.claim(conn, worker_id=self.worker.id, limit=free)
        for message in claimed:
            entry = Inflight(_as_job(message), "", self.worker.settings.lease_seconds)
            self.worker.broadcast_inflight[message.message_id] = entry
            self.worker.slots.submit(entry, functools.partial(self._run, message.message_id))
        return len(claimed)

    async def _run(self, message_id: int, entry: Inflight) -> None:
        worker = self.worker
        outcome: Outcome
        try:
            if worker.stopping:
                outcome = Release(entry.job.id, "")
            else:
                entry.started, entry.started_at = True, time.monotonic()
                outcome = await worker.executor.run(entry)
        except Exception as exc:
            log.exception("worker %s: internal error running broadcast %s", worker.id, message_id)
            outcome = RetryLater(entry.job.id, "", 1.0, f"internal worker error: {exc!r}")
        except asyncio.CancelledError:
            stopped = f"worker {worker.id} stopped while the message was running"
            outcome = (
                RetryLater(entry.job.id, "", 0.0, stopped) if entry.started else Release(entry.job.id, "")
            )
        worker.broadcast_inflight.pop(message_id, None)
        worker.counts[_count_as(outcome)] += 1
        self.acks.append(to_ack(message_id, outcome))
        worker.flush_soon()

    async def flush(self, conn: AsyncConn) -> None:
        """Write the buffered acks; on a lost connection they wait for the next flush."""
        batch, self.acks = self.acks, []
        if not batch:
            return
        try:
            await self.store.ack(conn, worker_id=self.worker.id, acks=batch)
        except CONNECTION_ERRORS:
            self.acks[:0] = batch
            raise

    async def maintain(self, conn: AsyncConn) -> None:
        """Forget gone subscribers, prune fully delivered messages (any worker may run it)."""
        await self.store.gc(conn)
        await self.store.prune(conn)


def to_ack(message_id: int, outcome: Outcome) -> BroadcastAck:
    """The fan-out row update for what the executor decided."""
    if isinstance(outcome, Finish):
        return BroadcastAck(message_id, outcome.state, result=outcome.result, error=outcome.error)
    if isinstance(outcome, RetryLater):
        return BroadcastAck(message_id, "pending", error=outcome.error, delay=outcome.delay)
    return BroadcastAck(message_id, "pending", released=True)


def _count_as(outcome: Outcome) -> str:
    if isinstance(outcome, Finish):
        return outcome.state
    return "retried" if isinstance(outcome, RetryLater) else "released"


def _as_job(message: ClaimedBroadcast) -> ClaimedJob:
    """The executor runs jobs; a broadcast message looks like one on queue ``broadcast:<channel>``."""
    return ClaimedJob(
        id=message.task_id,
        task=message.task,
        queue=f"broadcast:{message.channel}",
        priority=0,
        args=message.args,
        headers=message.headers,
        attempts=message.attempts,
        max_retries=message.max_retries,
        expires_at=message.expires_at,
        visibility_timeout=None,
        acks_late=message.delivery == "at-least-once",
    )
