"""The namespace exporter's collector: at each scrape it reads the namespace's queues, dead
letters, workers, schedules, workflow runs and rate and concurrency limits from the database
(one short transaction, each statement under a timeout), so one scrape covers every queue
without scraping any worker."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import psycopg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from stem_pg.core.errors import StemError
from stem_pg.core.redaction import one_line
from stem_pg.core.workflows import RunStatus
from stem_pg.db.connect import connection
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.metrics import MetricsStore, NamespaceReading

log = logging.getLogger(__name__)

#: At most this many queues are reported (by name): each is a few series.
MAX_QUEUES = 1000
#: At most this many limiter rows are reported: every limit first, then groups of keyed
#: limits (one per tenant, say) up to this many in all.
MAX_LIMITS = 1000


class NamespaceCollector(Collector):
    """Gauges of one namespace, read when scraped. A database that cannot be read makes
    ``stem_namespace_up`` 0 (and one warning per failed scrape), not a failed scrape."""

    def __init__(self, url: str, namespace: str, *, stale_after: float = 60.0, timeout: float = 5.0) -> None:
        self.url = url
        self.namespace = namespace
        self.stale_after = stale_after
        self.timeout = timeout
        self.store = MetricsStore(queries_for(namespace))

    def collect(self) -> Iterator[Metric]:
        began = time.perf_counter()
        try:
            with connection(self.url, role="metrics") as conn:
                reading = self.store.read(
                    conn,
                    stale_after=self.stale_after,
                    max_queues=MAX_QUEUES,
                    max_limits=MAX_LIMITS,
                    timeout=self.timeout,
                )
        except (psycopg.Error, StemError) as exc:
            log.warning("namespace %s: metrics not read: %s", self.namespace, one_line(str(exc)))
            reading = None
        if reading is not None:
            yield from families(reading)
        yield GaugeMetricFamily(
            "stem_namespace_up", "1 when this scrape read the namespace, else 0.", reading is not None
        )
        yield GaugeMetricFamily(
            "stem_namespace_scrape_seconds",
            "Seconds this scrape spent reading the namespace.",
            time.perf_counter() - began,
        )


def families(reading: NamespaceReading) -> Iterator[Metric]:
    """The gauges of one reading."""
    jobs = GaugeMetricFamily(
        "stem_queue_jobs",
        "Live jobs of a queue: ready (runnable now), scheduled (countdown or retry delay), running.",
        labels=["queue", "state"],
    )
    age = GaugeMetricFamily(
        "stem_queue_oldest_ready_age_seconds",
        "How long a queue's longest-waiting ready job has been runnable (0: none is ready).",
        labels=["queue"],
    )
    paused = GaugeMetricFamily("stem_queue_paused", "1 while the queue is paused.", labels=["queue"])
    for q in reading.queues:
        jobs.add_metric([q.queue, "ready"], q.ready)
        jobs.add_metric([q.queue, "scheduled"], q.scheduled)
        jobs.add_metric([q.queue, "running"], q.running)
        age.add_metric([q.queue], q.oldest_ready_age or 0.0)
        paused.add_metric([q.queue], q.paused)
    yield from (jobs, age, paused)
    dead = GaugeMetricFamily(
        "stem_dead_letters", "Dead letters of a queue not replayed yet.", labels=["queue"]
    )
    for row in reading.dead_letters:
        dead.add_metric([row.key], row.count)
    yield dead
    workers = GaugeMetricFamily(
        "stem_workers",
        "Running workers: alive (a recent heartbeat) or stale (none within --stale-after).",
        labels=["status"],
    )
    workers.add_metric(["alive"], reading.workers.alive)
    workers.add_metric(["stale"], reading.workers.stale)
    yield workers
    s = reading.schedules
    yield GaugeMetricFamily("stem_schedules", "Enabled, unexpired schedule entries.", s.active)
    yield GaugeMetricFamily("stem_schedules_overdue", "Schedule entries whose next run is past.", s.overdue)
    yield GaugeMetricFamily(
        "stem_schedule_lag_seconds",
        "How long the most overdue schedule entry's next run is past (0: beat keeps up).",
        s.lag,
    )
    runs = GaugeMetricFamily("stem_workflow_runs", "Workflow runs by status.", labels=["status"])
    counted = {row.key: row.count for row in reading.workflow_runs}
    for status in RunStatus:
        runs.add_metric([status.value], counted.get(status.value, 0))
    yield runs
    yield from limit_families(reading)


def limit_families(reading: NamespaceReading) -> Iterator[Metric]:
    """The gauges of the rate and concurrency limits (``limit`` the scope, ``key`` a group's
    value or '' for the limit itself, whose row counts all its groups)."""
    tokens = GaugeMetricFamily(
        "stem_limit_tokens", "Tokens a rate limit's bucket holds now.", labels=["limit", "key"]
    )
    running = GaugeMetricFamily(
        "stem_limit_running", "Running jobs a concurrency limit counts.", labels=["limit", "key"]
    )
    capacity = GaugeMetricFamily(
        "stem_limit_capacity", "Running jobs a concurrency limit allows.", labels=["limit", "key"]
    )
    ready = GaugeMetricFamily(
        "stem_limit_ready_jobs",
        "Ready jobs under a limit (runnable now, waiting for a claim or a token or slot).",
        labels=["limit", "key", "kind"],
    )
    for row in reading.limits:
        if row.kind == "rate":
            tokens.add_metric([row.scope, row.key], row.tokens or 0.0)
        else:
            running.add_metric([row.scope, row.key], row.running)
            capacity.add_metric([row.scope, row.key], row.concurrency or 0)
        ready.add_metric([row.scope, row.key, row.kind], row.ready)
    yield from (tokens, running, capacity, ready)
