"""Housekeeping every worker runs: rescue expired leases, cancel expired jobs, vacuum the
jobs table when dead rows pile up, roll finished jobs up by minute (the dashboard's chart),
prune results and long-gone workers (and, at the same pace as pruning, whatever else the
worker hands in: revokes, replies, broadcasts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from psycopg.errors import InsufficientPrivilege

from stem_pg.db.stores.jobs import AsyncConn, JobStore
from stem_pg.db.stores.rollup import RollupStore
from stem_pg.db.stores.vacuum import VacuumStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.vacuum import JobsVacuum

log = logging.getLogger(__name__)

#: Rows of one result_prune call (one short autocommit transaction each).
PRUNE_BATCH = 5000
#: Seconds of result pruning per pass at most; a pass that used them all with full batches
#: leaves the rest to the next pass (maintenance_interval later, not prune_interval).
PRUNE_BUDGET = 0.5


@dataclass
class MaintenanceReport:
    requeued: int = 0
    lease_failed: int = 0
    cancelled: int = 0
    vacuumed: int = 0  # dead rows the jobs table had when this pass vacuumed it
    pruned: int = 0
    workers_pruned: int = 0  # rows of workers gone for longer than settings.worker_retention
    rolled_up: int = 0  # results this pass counted into result_minutes (the dashboard's chart)


class Maintenance:
    """One pass of housekeeping per ``run_once``; safe to run in every worker at once
    (the queries skip rows another worker already holds)."""

    def __init__(
        self,
        jobs: JobStore,
        settings: WorkerSettings,
        *,
        on_requeued: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        housekeeping: Sequence[Callable[[AsyncConn], Awaitable[object]]] = (),
        vacuum: JobsVacuum | None = None,
        workers: WorkerStore | None = None,
        on_report: Callable[[MaintenanceReport], None] | None = None,
        prune_batch: int = PRUNE_BATCH,
        prune_budget: float = PRUNE_BUDGET,
        rollup: RollupStore | None = None,
    ) -> None:
        self.jobs = jobs
        self.workers = workers
        self.settings = settings
        self.on_requeued = on_requeued
        self.housekeeping = tuple(housekeeping)
        self.clock = clock
        self.vacuum = vacuum or JobsVacuum(VacuumStore(jobs.q))
        self.rollup = rollup or RollupStore(jobs.q)
        self._rollup_refused = False  # warned once: the role may not write the rollup
        self._last_prune = clock()
        self.prune_batch = prune_batch
        self.prune_budget = prune_budget
        #: The last pass stopped pruning results with expired ones left (its budget ran out).
        self._results_behind = False
        #: Told what each pass did (the metrics count rescues and vacuums).
        self.on_report = on_report
        #: Set to run the next pass now rather than at the interval (a burst of claims).
        self.soon = asyncio.Event()

    async def run_when_due(self, conn: AsyncConn) -> None:
        """Wait for the interval (jittered, so workers do not all run at once) or ``soon``,
        then run one pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.maintenance_interval * random.uniform(0.8, 1.2)):
                await self.soon.wait()
        self.soon.clear()
        await self.run_once(conn)

    async def run_once(self, conn: AsyncConn) -> MaintenanceReport:
        report = MaintenanceReport()
        rescued = await self.jobs.rescue_expired(conn)
        report.requeued, report.lease_failed = rescued.requeued, rescued.failed
        if rescued.requeued or rescued.failed:
            log.warning(
                "rescued %d jobs with expired leases (%d failed for good)",
                rescued.requeued + rescued.failed,
                rescued.failed,
            )
        if rescued.requeued:
            self.on_requeued()
        report.cancelled = await self.jobs.cancel_expired(conn)
        if self.settings.vacuum:
            report.vacuumed = await self.vacuum.run_once(conn)
        report.rolled_up = await self._roll_up(conn)
        now = self.clock()
        due = now - self._last_prune >= self.settings.prune_interval
        if due or self._results_behind:
            report.pruned = await self._prune_results(conn)
        if due:
            self._last_prune = now
            if self.workers is not None:
                retention = self.settings.worker_retention
                report.workers_pruned = await self.workers.prune(conn, retention=retention)
            for chore in self.housekeeping:
                await chore(conn)
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def _roll_up(self, conn: AsyncConn) -> int:
        """Every pass: roll the complete minutes' results up for the dashboard's chart, one
        worker at a time (the others skip); with no complete minute to add it costs a lock
        attempt and an empty index range. A role granted before migration 0019 (``stem
        roles`` not run again) may not: warned once, and the rest of the pass goes on."""
        try:
            rolled = await self.rollup.roll_up(conn)
        except InsufficientPrivilege as exc:
            if not self._rollup_refused:
                log.warning("not rolling results up for the dashboard (run `stem roles` again): %s", exc)
                self._rollup_refused = True
            return 0
        return rolled.results if rolled else 0

    async def _prune_results(self, conn: AsyncConn) -> int:
        """Expired results, a batch (transaction) at a time while batches come back full, for
        up to ``prune_budget`` seconds: one batch a prune interval fell behind any worker
        finishing more than ~80 results a second, and the table grew past its retention."""
        started = time.monotonic()
        pruned = 0
        while True:
            batch = await self.jobs.prune_results(conn, limit=self.prune_batch)
            pruned += batch
            if batch < self.prune_batch:
                self._results_behind = False
                return pruned
            if time.monotonic() - started >= self.prune_budget:
                self._results_behind = True
                return pruned
