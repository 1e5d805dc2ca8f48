"""A worker process's metrics: jobs by task, queue and outcome, run and wait times, claims,
flushes, leases, rescues, vacuums and reconnects.

The worker runs tens of thousands of jobs a second, so a job costs a dictionary update and
two bucket searches here; once a second (and as the worker stops) ``publish`` adds what
piled up to the prometheus_client values, a few locked writes per task and queue. Label
values are bounded: ``task`` is a registered task name (any other is ``(unregistered)``),
``queue`` one the worker consumes, ``outcome`` one of six words.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stem_pg.db.stores.rows import ClaimedJob

#: The ``task`` label of jobs whose task the worker does not register (dead-lettered).
UNREGISTERED = "(unregistered)"
#: Seconds between two publishes: how stale a scrape may be.
PUBLISH_INTERVAL = 1.0

RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class Held(Protocol):
    """A job the worker holds (stem_pg.worker.context.Inflight)."""

    @property
    def job(self) -> ClaimedJob: ...
    @property
    def started(self) -> bool: ...
    @property
    def started_at(self) -> float: ...  # time.monotonic() as its handler started


class MaintenanceReport(Protocol):
    """What a maintenance pass did (stem_pg.worker.maintenance.MaintenanceReport)."""

    @property
    def requeued(self) -> int: ...
    @property
    def lease_failed(self) -> int: ...
    @property
    def vacuumed(self) -> int: ...


class PendingObservations:
    """Observations of one histogram child not yet published: bucket counts and their sum.

    ``publish`` writes them the way ``Histogram.observe`` would, one bucket increment per
    non-empty bucket instead of one per observation (tests/unit/test_metrics_worker.py checks
    that the exposition is the same).
    """

    __slots__ = ("bounds", "counts", "target", "total")

    def __init__(self, target: Histogram) -> None:
        self.target = target
        self.bounds: Sequence[float] = target._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value, as observe()
        self.total += value

    def publish(self) -> None:
        if not any(self.counts):
            return
        for index, count in enumerate(self.counts):
            if count:
                self.target._buckets[index].inc(count)
        self.target._sum.inc(self.total)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0


class _TaskTally:
    """One (task label, queue)'s outcomes and run times since the last publish."""

    __slots__ = ("outcomes", "runs")

    def __init__(self, runs: Histogram) -> None:
        self.outcomes: dict[str, int] = {}
        self.runs = PendingObservations(runs)


class WorkerMetrics:
    """The metrics of one worker process, on ``registry`` (a private one by default).

    ``is_task(name)`` says whether ``name`` is a registered task (else it is counted as
    ``(unregistered)``). Under ``--processes`` make it in the forked process: its values go
    to that process's files (stem_pg.metrics.exposition.SharedMetrics).
    """

    def __init__(
        self,
        queues: Sequence[str],
        is_task: Callable[[str], bool],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.queues = tuple(queues)
        self.is_task = is_task
        self.registry = registry = registry if registry is not None else CollectorRegistry()
        self.jobs = Counter(
            "stem_jobs",
            "Job attempts ended, by outcome (succeeded, failed, cancelled, retried, released).",
            ["task", "queue", "outcome"],
            registry=registry,
        )
        self.run_seconds = Histogram(
            "stem_job_run_seconds",
            "Seconds from a handler's start to its outcome.",
            ["task", "queue"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.wait_seconds = Histogram(
            "stem_job_wait_seconds",
            "Seconds a job waited ready in its queue: from its enqueue (or the end of its countdown"
            " or retry delay) to its claim.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "stem_jobs_in_flight",
            "Jobs the worker processes hold: leased, running or waiting for a slot.",
            ["queue"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._claim_metrics(registry)
        self._upkeep_metrics(registry)
        self._tallies: dict[tuple[str, str], _TaskTally] = {}  # by (task, queue): registered tasks
        self._by_label: dict[tuple[str, str], _TaskTally] = {}  # by (task label, queue)
        self._waits: dict[str, PendingObservations] = {}

    def _claim_metrics(self, registry: CollectorRegistry) -> None:
        self.claims = Counter("stem_claims", "Claim statements run.", ["queue"], registry=registry)
        self.claimed = Counter("stem_claimed_jobs", "Jobs leased by claims.", ["queue"], registry=registry)
        self.claim_seconds = Histogram(
            "stem_claim_seconds",
            "Seconds a claim statement took (round trip).",
            ["queue"],
            buckets=ROUND_TRIP_BUCKETS,
            registry=registry,
        )

    def _upkeep_metrics(self, registry: CollectorRegistry) -> None:
        self.flush_size = Histogram(
            "stem_flush_batch_size", "Outcomes written per flush.", buckets=BATCH_BUCKETS, registry=registry
        )
        self.flush_seconds = Histogram(
            "stem_flush_seconds",
            "Seconds a flush of outcomes took to write.",
            buckets=ROUND_TRIP_BUCKETS,
            registry=registry,
        )
        self.lease_extensions = Counter(
            "stem_lease_extensions", "Job leases the heartbeat extended.", registry=registry
        )
        self.leases_lost = Counter(
            "stem_leases_lost", "Job leases the heartbeat found lost (the job stopped).", registry=registry
        )
        self.rescued = Counter(
            "stem_rescued_jobs",
            "Jobs with expired leases the maintenance pass put back (requeued) or failed for good.",
            ["result"],
            registry=registry,
        )
        self.vacuums = Counter(
            "stem_vacuum_runs", "Vacuums of the jobs table the maintenance pass ran.", registry=registry
        )
        self.reconnects = Counter(
            "stem_reconnects",
            "Database connections opened again after they were lost, by the worker loop using them.",
            ["connection"],
            registry=registry,
        )

    # -- per job: plain Python, published later ----------------------------------------

    def job_ended(self, entry: Held, outcome: str) -> None:
        """An attempt ended with ``outcome``: its run time counts (if its handler started),
        and its wait until the claim."""
        job = entry.job
        queue = job.queue
        tally = self._tallies.get((job.task, queue)) or self._tally(job.task, queue)
        outcomes = tally.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if entry.started:
            tally.runs.observe(time.monotonic() - entry.started_at)
        waits = self._waits.get(queue)
        if waits is None:
            waits = self._waits[queue] = PendingObservations(self.wait_seconds.labels(queue))
        waits.observe(job.waited)

    def _tally(self, task: str, queue: str) -> _TaskTally:
        registered = self.is_task(task)
        label = task if registered else UNREGISTERED
        tally = self._by_label.get((label, queue))
        if tally is None:
            tally = self._by_label[(label, queue)] = _TaskTally(self.run_seconds.labels(label, queue))
        if registered:  # only those: any name may come from the database, the labels stay bounded
            self._tallies[(task, queue)] = tally
        return tally

    def publish(self, held: Iterable[Held]) -> None:
        """Add what piled up to the prometheus_client values; ``held``: the jobs the process
        holds now (the in-flight gauge)."""
        for (label, queue), tally in self._by_label.items():
            for outcome, count in tally.outcomes.items():
                if count:
                    self.jobs.labels(label, queue, outcome).inc(count)
            tally.outcomes.clear()
            tally.runs.publish()
        for pending in self._waits.values():
            pending.publish()
        holding = Tally(entry.job.queue for entry in held)
        for queue in self.queues:
            self.in_flight.labels(queue).set(holding.get(queue, 0))

    async def loop(self, held: Callable[[], Iterable[Held]]) -> None:
        """``publish`` every ``PUBLISH_INTERVAL`` seconds, and once more when cancelled (the
        worker stops its loops once every outcome is recorded)."""
        try:
            while True:
                await asyncio.sleep(PUBLISH_INTERVAL)
                self.publish(held())
        finally:
            self.publish(held())

    # -- per statement or event: written at once ---------------------------------------

    def claim_ran(self, queue: str, jobs: int, seconds: float) -> None:
        self.claims.labels(queue).inc()
        if jobs:
            self.claimed.labels(queue).inc(jobs)
        self.claim_seconds.labels(queue).observe(seconds)

    def flushed(self, outcomes: int, seconds: float) -> None:
        self.flush_size.observe(outcomes)
        self.flush_seconds.observe(seconds)

    def leases_checked(self, extended: int, lost: int) -> None:
        if extended:
            self.lease_extensions.inc(extended)
        if lost:
            self.leases_lost.inc(lost)

    def maintained(self, report: MaintenanceReport) -> None:
        if report.requeued:
            self.rescued.labels("requeued").inc(report.requeued)
        if report.lease_failed:
            self.rescued.labels("failed").inc(report.lease_failed)
        if report.vacuumed:
            self.vacuums.inc()

    def reconnected(self, role: str) -> None:
        """``role``: the connection's (``worker-claim``, ...); its label drops the prefix."""
        self.reconnects.labels(role.removeprefix("worker-")).inc()
