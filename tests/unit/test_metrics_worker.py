"""A worker's metrics: what piles up per job is published as prometheus_client would have
recorded it one observation at a time, with bounded labels."""

from __future__ import annotations

import random
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stem_pg.db.stores.rows import ClaimedJob
from stem_pg.metrics.worker import RUN_BUCKETS, UNREGISTERED, PendingObservations, WorkerMetrics
from tests.metrics_scrape import total


@dataclass
class Held:
    job: ClaimedJob
    started: bool = True
    started_at: float = 0.0


def job(task: str, queue: str = "default", waited: float = 0.5) -> ClaimedJob:
    return ClaimedJob("id", task, queue, 0, None, None, 1, 3, None, None, True, waited=waited)


def samples(registry: CollectorRegistry) -> list[Sample]:
    text = generate_latest(registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def test_published_observations_match_observe() -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    one = Histogram("h_seconds", "h", buckets=RUN_BUCKETS, registry=direct)
    pending = PendingObservations(Histogram("h_seconds", "h", buckets=RUN_BUCKETS, registry=batched))
    values = [*RUN_BUCKETS, 0.0, 1e9, *(random.uniform(0, 100) for _ in range(500))]
    for value in values:
        one.observe(value)
        pending.observe(value)
    pending.publish()
    pending.publish()  # nothing new: nothing added twice
    assert [s for s in samples(batched) if not s.name.endswith("_created")] == [
        s for s in samples(direct) if not s.name.endswith("_created")
    ]


def test_jobs_are_counted_by_task_queue_and_outcome_once_published() -> None:
    metrics = WorkerMetrics(["default", "mail"], is_task=lambda name: name == "known")
    for _ in range(3):
        metrics.job_ended(Held(job("known")), "succeeded")
    metrics.job_ended(Held(job("known", "mail")), "retried")
    metrics.job_ended(Held(job("typo.one"), started=False), "failed")
    metrics.job_ended(Held(job("typo.two"), started=False), "failed")
    assert total(samples(metrics.registry), "stem_jobs_total") == 0  # nothing published yet
    metrics.publish([Held(job("known", "mail"))])
    found = samples(metrics.registry)
    assert total(found, "stem_jobs_total", task="known", queue="default", outcome="succeeded") == 3
    assert total(found, "stem_jobs_total", task="known", queue="mail", outcome="retried") == 1
    assert total(found, "stem_jobs_total", task=UNREGISTERED, outcome="failed") == 2
    assert {s.labels["task"] for s in found if s.name == "stem_jobs_total"} == {"known", UNREGISTERED}
    assert total(found, "stem_job_run_seconds_count") == 4  # the unregistered ones never started
    assert total(found, "stem_job_wait_seconds_count") == 6
    assert total(found, "stem_job_wait_seconds_sum") == 3.0
    assert total(found, "stem_jobs_in_flight", queue="mail") == 1
    assert total(found, "stem_jobs_in_flight", queue="default") == 0
    metrics.publish([])
    assert total(samples(metrics.registry), "stem_jobs_total") == 6  # published once
