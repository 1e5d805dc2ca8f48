"""The worker's side of broadcast channels: subscribe, claim its fan-out rows, run, ack.

Messages run through the same executor and concurrency slots as jobs, but
hold no lease: only this subscriber can run its rows. Whether a message runs
again after a crash depends on its delivery mode: at-least-once rows stay
``running`` until acked and go back to ``pending`` when the same worker id
starts again; at-most-once rows were marked ``delivered`` before they ran.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stem_pg.core.logs import current_job
from stem_pg.core.routing_registry import BROADCAST_QUEUE_PREFIX
from stem_pg.core.signing import SIGNATURE_HEADER
from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn
from stem_pg.db.stores.broadcasts import BroadcastAck, BroadcastStore, ClaimedBroadcast
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, RetryLater
from stem_pg.worker.context import Inflight
from stem_pg.worker.logs import log_outcome
from stem_pg.worker.outcomes import count_as
from stem_pg.worker.slots import Run
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)


class BroadcastAcks:
    """The fan-out row updates waiting for the next flush (the flusher writes them)."""

    def __init__(self, store: BroadcastStore, *, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self.pending: list[BroadcastAck] = []

    def add(self, message_id: int, outcome: Outcome) -> None:
        self.pending.append(to_ack(message_id, outcome))

    async def flush(self, conn: AsyncConn) -> None:
        """Write the buffered acks; on a lost connection they wait for the next flush."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            await self.store.ack(conn, worker_id=self.worker_id, acks=batch)
        except CONNECTION_ERRORS:
            self.pending[:0] = batch
            raise


class BroadcastConsumer:
    """Runs the broadcast messages fanned out to one worker.

    It claims into the worker's slots (``submit``), runs each message with the
    job executor (``run``), and records its ack for the flusher (``recorded`` asks
    for a flush).
    """

    def __init__(
        self,
        store: BroadcastStore,
        state: WorkerState,
        acks: BroadcastAcks,
        *,
        submit: Callable[[Inflight, Run], None],
        run: Callable[[Inflight, str], Awaitable[Outcome]],
        recorded: Callable[[], None],
    ) -> None:
        self.store = store
        self.state = state
        self.acks = acks
        self.submit = submit
        self.run = run
        self.recorded = recorded
        self.channels = frozenset(state.settings.broadcasts)

    async def start(self, conn: AsyncConn) -> None:
        """Subscribe (exactly to this worker's channels) and take back what an earlier
        run of this worker id left unacked."""
        worker_id = self.state.id
        joined = await self.store.subscribe(conn, worker_id=worker_id, channels=sorted(self.channels))
        recovered = await self.store.recover(conn, worker_id=worker_id)
        if recovered or joined.replayed:
            log.warning(
                "worker %s: %d broadcast messages left unacked by an earlier run; %d replayed",
                worker_id,
                len(recovered),
                joined.replayed,
            )

    async def claim(self, conn: AsyncConn, free: int) -> int:
        """Claim and start up to ``free`` messages; returns how many."""
        if not self.channels or free <= 0:
            return 0
        claimed = await self.store.claim(conn, worker_id=self.state.id, limit=free)
        for message in claimed:
            entry = Inflight(_as_job(message), "", self.state.settings.lease_seconds)
            self.state.broadcast_inflight[message.message_id] = entry
            self.submit(entry, functools.partial(self._run, message.message_id))
        return len(claimed)

    async def _run(self, message_id: int, entry: Inflight) -> None:
        context = current_job.set(entry.job)
        try:
            outcome = await self.run(entry, "message")
        finally:
            current_job.reset(context)
        log_outcome(entry, outcome, "message")
        self.state.broadcast_inflight.pop(message_id, None)
        self.state.counts[count_as(outcome)] += 1
        self.acks.add(message_id, outcome)
        self.recorded()

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


def _as_job(message: ClaimedBroadcast) -> ClaimedJob:
    """The executor runs jobs; a broadcast message looks like one on queue ``broadcast:<channel>``
    (its payload signature taken out of the headers, as the job claim does)."""
    headers: dict[str, Any] | None = message.headers
    signature = headers.get(SIGNATURE_HEADER) if isinstance(headers, dict) else None
    if isinstance(signature, str) and isinstance(headers, dict):
        headers = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    else:
        signature = None
    return ClaimedJob(
        id=message.task_id,
        task=message.task,
        queue=BROADCAST_QUEUE_PREFIX + message.channel,
        priority=0,
        args=message.args,
        headers=headers,
        attempts=message.attempts,
        max_retries=message.max_retries,
        expires_at=message.expires_at,
        visibility_timeout=None,
        acks_late=message.delivery == "at-least-once",
        signature=signature,
    )
