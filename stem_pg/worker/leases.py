"""The lease gate: a leased job starts only on a lease the worker knows it still holds.

The claim and every heartbeat tell each held job when its lease ends at the earliest
(``leased``); a connection failure makes every lease unconfirmed until the heartbeat
extends it again. Right before a job starts, ``LeaseGate.admit`` applies the rule of
``stem_pg.core.leases``: a lost lease is dropped (another worker may run the job), one
about to run out is handed back, an unconfirmed one waits for the heartbeat. So a worker
that froze past its leases, or whose server restarted, never starts a job that another
worker may be running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from stem_pg.core.leases import LeaseCheck, check_lease, start_by
from stem_pg.db.stores.rows import Release
from stem_pg.worker.context import Inflight
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)

#: How often a job waiting for its lease to be confirmed looks again.
CONFIRM_POLL = 0.02


def leased(entry: Inflight, *, sent: float, epoch: int, seconds: float) -> None:
    """The database acknowledged a claim or extension of ``seconds`` sent at ``sent``
    (monotonic) in lease epoch ``epoch``."""
    entry.lease_deadline = sent + seconds
    entry.start_by = start_by(sent=sent, seconds=seconds)
    entry.lease_epoch = epoch


class LeaseGate:
    """``admit`` each leased job right before it starts."""

    def __init__(
        self,
        state: WorkerState,
        *,
        wake_leases: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.wake_leases = wake_leases
        self.clock = clock

    def check(self, entry: Inflight) -> LeaseCheck:
        return check_lease(
            lost=entry.lost,
            confirmed=entry.lease_epoch == self.state.lease_epoch,
            start_by=entry.start_by,
            now=self.clock(),
        )

    def startable(self, entry: Inflight) -> bool:
        """Whether the job may start now (the common case, without ``admit``'s await):
        ``check`` says VALID, spelled out as it is asked before every job."""
        confirmed = entry.lease_epoch == self.state.lease_epoch
        return confirmed and not entry.lost and self.clock() < entry.start_by

    async def admit(self, entry: Inflight) -> Release | None:
        """None: start the job now. Else the outcome to record instead of running it: a
        release guarded by the lease token (it changes nothing once another worker holds it)."""
        check = self.check(entry)
        while check is LeaseCheck.UNCONFIRMED and not self.state.stopping:
            self.wake_leases()
            await asyncio.sleep(CONFIRM_POLL)
            check = self.check(entry)
        if check is LeaseCheck.VALID or check is LeaseCheck.UNCONFIRMED:  # stopping: the run releases it
            return None
        job_id = entry.job.id
        if check is LeaseCheck.EXPIRING:
            left = entry.lease_deadline - self.clock()
            log.warning(
                "worker %s: not starting task %s: its lease %s by this worker's clock (another"
                " worker may run it); handing it back",
                self.state.id,
                job_id,
                f"runs out in {left:.2f}s" if left > 0 else f"ran out {-left:.2f}s ago",
            )
        # A lost lease was logged when the heartbeat found it; the release changes nothing then.
        return Release(job_id, entry.token)
