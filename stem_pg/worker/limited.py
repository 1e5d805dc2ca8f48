"""The claim of queues with rate or concurrency limits (stem_pg.core.limits).

Chosen at worker start, per queue: a queue with limits of its own, and every queue when
a registered task has limits (a limited task keeps them on whatever queue it is sent
to), is claimed by ``claim_limited`` (migration 0013); a worker of an app without task
limits keeps the plain claim on its other queues, which pays nothing for limits. The
limited claim leaves the jobs over a limit queued and says when to look again: when a
rate limit has a token (a timed wake-up, not a poll loop), or when a limited job finishes
(after the flush of its outcome, its worker claims again, or NOTIFYs the queue when it
has no room).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from stem_pg.core.limits import ClaimPlan, claim_plan
from stem_pg.core.routing_registry import RoutingRegistry
from stem_pg.core.tasks import TaskRegistry, task_limits
from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.limits import LimitedClaim, LimitStore
from stem_pg.db.stores.rows import ClaimedJob
from stem_pg.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

#: A rate-limited queue is looked at again no sooner than this (seconds): the tokens that
#: come back meanwhile are claimed together (the bucket holds BURST_SECONDS' worth).
MIN_WAIT = 0.05
#: Another claim held a limiter: look again after this long.
BUSY_WAIT = 0.02
#: A missing limiter row is reported at most this often (seconds), per limit.
MISSING_REPORT_INTERVAL = 60.0


def plan_for(queues: Iterable[str], registry: TaskRegistry, routing: RoutingRegistry) -> ClaimPlan:
    """The limited queues among a worker's ``queues``: the tasks' limits (every queue, when
    a task has any: it may be sent to any of them) and the routing file's queue limits."""
    tasks = [task_limits(definition) for definition in registry]
    own = {name: queue.limits for name, queue in routing.config.queues.items()}
    return claim_plan(queues, tasks, own)


class LimitedClaims:
    """A worker's claim of each queue (plain or limited), the wake-ups the limited claim
    asks for, and the finished limited jobs other workers are told of."""

    def __init__(
        self, jobs: JobStore, store: LimitStore, plan: ClaimPlan, settings: WorkerSettings, namespace: str
    ) -> None:
        self.jobs = jobs
        self.store = store
        self.plan = plan
        self.queues = plan.queues
        self.worker_id = settings.worker_id
        self.lease_seconds = settings.lease_seconds
        self.namespace = namespace
        self._specs = {queue: json.dumps(spec, separators=(",", ":")) for queue, spec in plan.specs.items()}
        #: When (monotonic) a limited queue is worth claiming again, if a limit held jobs back.
        self.wake_at: float | None = None
        #: Limited queues whose jobs finished since the last flush: their workers are told.
        self.finished: set[str] = set()
        specs = plan.specs
        self._slotted_queues = {q for q, spec in specs.items() if "concurrency" in spec.get("queue", {})}
        self._slotted_tasks = {
            name for spec in specs.values() for name, task in spec["tasks"].items() if "concurrency" in task
        }
        self._reported: dict[str, float] = {}
        #: Claims of the claim loop under way (a claim in the flush waits for them to end).
        self.claiming = 0
        #: Set by the worker (``bind``): its claim loop's free slots now, its wake-up, how it
        #: starts claimed jobs, the task names it claims (None: any) and its lease epoch.
        self.free: Callable[[], int] = lambda: 0
        self.wake_self: Callable[[], None] = lambda: None
        self.start: Callable[[ClaimedJob, str, float, int], None] = lambda job, token, sent, epoch: None
        self.tasks: Callable[[], list[str] | None] = lambda: None
        self.lease_epoch: Callable[[], int] = lambda: 0

    def bind(
        self,
        *,
        free: Callable[[], int],
        wake_self: Callable[[], None],
        start: Callable[[ClaimedJob, str, float, int], None],
        tasks: Callable[[], list[str] | None],
        lease_epoch: Callable[[], int],
    ) -> None:
        self.free, self.wake_self, self.start = free, wake_self, start
        self.tasks, self.lease_epoch = tasks, lease_epoch

    def describe(self) -> dict[str, Any]:
        """What ``stem worker inspect`` shows: the limited queues, and each declared limit."""
        return {"limited_queues": sorted(self.queues), "limits": [dict(row) for row in self.plan.rows]}

    async def register(self, conn: AsyncConn) -> None:
        """Make the limiter rows of this worker's limits (again, if one was deleted)."""
        await self.store.register(conn, rows=self.plan.rows)

    async def maintain(self, conn: AsyncConn) -> None:
        """Each maintenance pass: the limiter rows made again if deleted, idle groups' rows pruned."""
        if self.plan.rows:
            await self.register(conn)
            await self.store.prune(conn)

    async def claim(
        self, conn: AsyncConn, *, queue: str, limit: int, token: str, tasks: list[str] | None = None
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` jobs of ``queue`` (of the task names ``tasks``, None: any): by
        the plain claim, or when the queue is a limited one, by the limited claim (only the
        jobs its limits let start)."""
        self.claiming += 1
        try:
            if queue not in self.queues:
                return await self.jobs.claim(
                    conn,
                    queue=queue,
                    limit=limit,
                    worker_id=self.worker_id,
                    token=token,
                    lease_seconds=self.lease_seconds,
                    tasks=tasks,
                )
            claimed = await self.claim_limited(conn, queue=queue, limit=limit, token=token, tasks=tasks)
            return claimed.jobs
        finally:
            self.claiming -= 1

    async def claim_limited(
        self, conn: AsyncConn, *, queue: str, limit: int, token: str, tasks: list[str] | None = None
    ) -> LimitedClaim:
        params = self._params(queue=queue, limit=limit, token=token, tasks=tasks)
        return self._noted(queue, await self.store.read_claim(await self.store.send_claim(conn, **params)))

    def _params(self, *, queue: str, limit: int, token: str, tasks: list[str] | None) -> dict[str, Any]:
        spec, lease = self._specs[queue], self.lease_seconds
        return dict(
            queue=queue,
            limit=limit,
            worker_id=self.worker_id,
            token=token,
            lease_seconds=lease,
            spec=spec,
            tasks=tasks,
        )

    def _noted(self, queue: str, claim: LimitedClaim) -> LimitedClaim:
        """``claim``'s wake-up (a rate's token due, a busy limiter) and missing limiter rows."""
        wait = BUSY_WAIT if claim.busy else None
        if claim.wait is not None:
            wait = max(MIN_WAIT, claim.wait) if wait is None else min(wait, max(MIN_WAIT, claim.wait))
        if wait is not None:
            at = time.monotonic() + wait
            self.wake_at = at if self.wake_at is None else min(self.wake_at, at)
        for name in claim.missing:
            self._report_missing(queue, name)
        return claim

    def timeout(self, poll: float) -> float:
        """How long the claim loop may sleep: ``poll``, or less when a limit frees up sooner."""
        if self.wake_at is None:
            return poll
        return max(0.0, min(poll, self.wake_at - time.monotonic()))

    def woke(self) -> None:
        """The claim loop is about to claim: a pending wake-up is used up."""
        if self.wake_at is not None and self.wake_at <= time.monotonic():
            self.wake_at = None

    def done(self, job: ClaimedJob) -> bool:
        """``job`` ended here: if it held a concurrency slot, its queue's workers are told
        once its outcome is written. True when it did (the slot is free only then)."""
        slotted = job.task in self._slotted_tasks or job.queue in self._slotted_queues
        if slotted and job.queue in self.queues:
            self.finished.add(job.queue)
            return True
        return False

    def claim_wanted(self) -> bool:
        """A limited job that held a slot finished here and this worker has room: the flush
        writing its outcome claims into the slot in the same transaction (``claim_in_flush``)."""
        return bool(self.finished) and self.free() > 0

    async def claim_in_flush(self, conn: AsyncConn) -> Callable[[], Awaitable[None]]:
        """Claim a queue of the finished limited jobs on the flush connection, in the pipelined
        transaction that writes their outcomes: the slots they free are free to this claim,
        and the hand-off costs one commit and one round trip, with no hop to the claim loop.
        The claim is only sent; what this returns reads it and starts its jobs, to call once
        the transaction committed (if it does not, nothing was claimed, and ``after_flush``
        wakes the claim loop as without it). Other finished queues: ``after_flush``."""
        queue, token = min(self.finished), str(uuid.uuid4())
        sent, epoch = time.monotonic(), self.lease_epoch()
        params = self._params(queue=queue, limit=self.free(), token=token, tasks=self.tasks())
        cur = await self.store.send_claim(conn, **params)

        async def committed() -> None:
            self.finished.discard(queue)
            for job in self._noted(queue, await self.store.read_claim(cur)).jobs:
                self.start(job, token, sent, epoch)
            if self.wake_at is not None:  # a limit asked to look again: the claim loop, which
                self.wake_self()  # may be asleep for a whole poll interval, sets its timer

        return committed

    def claim_abandoned(self) -> None:
        """The flush's transaction failed: ``after_flush`` wakes the claim loop as without it."""

    async def after_flush(self, conn: AsyncConn) -> None:
        """Outcomes were written and a concurrency slot is free (and not claimed in the flush):
        this worker claims again at once when it has room (one claim, not every worker's at
        once), else it wakes the workers of those queues."""
        if self.finished:
            queues, self.finished = sorted(self.finished), set()
            if self.free() > 0:
                self.wake_self()
            else:
                await self.store.wake(conn, queues=queues)

    def _report_missing(self, queue: str, name: str) -> None:
        now = time.monotonic()
        if now - self._reported.get(name, -MISSING_REPORT_INTERVAL) < MISSING_REPORT_INTERVAL:
            return
        self._reported[name] = now
        kind, scope = name.split(" ", 1)
        limits = self.plan.specs[queue].get("queue", {}) if scope.startswith("queue:") else None
        if limits is None:
            limits = self.plan.specs[queue]["tasks"].get(scope.removeprefix("task:"), {})
        fail_open = limits.get("fail_open", True)
        log.warning(
            "worker %s: the %s limit of %s has no row in %s.limiters (deleted by hand?): its"
            " jobs %s until the next maintenance pass makes the row again",
            self.worker_id,
            kind,
            scope,
            self.namespace,
            "run without it (fail open)" if fail_open else "stay queued (fail closed)",
        )
