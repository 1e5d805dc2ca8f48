"""Readings of the namespace exporter (``stem metrics serve``): queue depths, dead letters,
workers, schedules, workflow runs and rate and concurrency limits, read in one short
transaction (synchronous)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int
    scheduled: int
    running: int
    oldest_ready_age: float | None  # None: nothing ready
    paused: bool


@dataclass(frozen=True)
class CountBy:
    """A count of rows by one column's value (queue, status)."""

    key: str
    count: int


@dataclass(frozen=True)
class WorkerCounts:
    alive: int
    stale: int


@dataclass(frozen=True)
class ScheduleCounts:
    active: int
    overdue: int
    lag: float


@dataclass(frozen=True)
class LimitState:
    """A row of the ``limiter_state`` view: a limit (``key`` '') or one group of a keyed limit."""

    kind: str  # 'rate' or 'concurrency'
    scope: str
    key: str
    tokens: float | None  # rate buckets: tokens available now
    concurrency: int | None  # concurrency limits: running jobs allowed
    running: int
    ready: int


@dataclass(frozen=True)
class NamespaceReading:
    """What one scrape reads."""

    queues: list[QueueDepth]
    dead_letters: list[CountBy]
    workers: WorkerCounts
    schedules: ScheduleCounts
    workflow_runs: list[CountBy]
    limits: list[LimitState]


class MetricsStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def read(
        self, conn: Conn, *, stale_after: float, max_queues: int, max_limits: int, timeout: float
    ) -> NamespaceReading:
        """Every reading, in one transaction whose statements each get ``timeout`` seconds."""
        params = {"stale_after": stale_after, "max_queues": max_queues, "max_limits": max_limits}
        with conn.transaction():
            conn.execute(self.q["metrics_statement_timeout"], {"timeout_ms": str(int(timeout * 1000))})
            with conn.cursor(row_factory=class_row(QueueDepth)) as cur:
                queues = cur.execute(self.q["metrics_queues"], params).fetchall()
            with conn.cursor(row_factory=class_row(CountBy)) as cur:
                dead = cur.execute(self.q["metrics_dead_letters"], params).fetchall()
                runs = cur.execute(self.q["metrics_workflow_runs"]).fetchall()
            with conn.cursor(row_factory=class_row(WorkerCounts)) as cur:
                workers = cur.execute(self.q["metrics_workers"], params).fetchone() or WorkerCounts(0, 0)
            with conn.cursor(row_factory=class_row(ScheduleCounts)) as cur:
                schedules = cur.execute(self.q["metrics_schedules"]).fetchone() or ScheduleCounts(0, 0, 0.0)
            with conn.cursor(row_factory=class_row(LimitState)) as cur:
                limits = cur.execute(self.q["metrics_limits"], params).fetchall()
        return NamespaceReading(queues, dead, workers, schedules, runs, limits)
