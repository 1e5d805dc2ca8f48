"""``--metrics-port``: one port on the supervisor serves the sum over its forked worker
processes (prometheus_client's multiprocess mode), recycled processes included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.metricsapp import make_metrics_app
from tests.acceptance.workerapp import Workers, scalar
from tests.helpers import wait_for
from tests.metrics_scrape import answers, free_port, scrape, total

APP = "tests.acceptance.metricsapp:app"


@pytest.fixture
def mapp(database_url: str, namespace: str) -> Iterator[Stem]:
    application = make_metrics_app(database_url, namespace)
    try:
        yield application
    finally:
        application.close()


@pytest.mark.timeout(90)
def test_forked_workers_serve_job_counters_that_add_up(
    mapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    port = free_port()
    # Each process retires after 8 tasks: the counts of the processes that exited stay in the sum.
    workers.start(
        app=APP, processes=2, concurrency=4, extra=["--metrics-port", str(port), "--max-tasks-per-child", "8"]
    )
    wait_for(lambda: answers(port), 30, "the metrics endpoint", interval=0.2)
    mapp.enqueue_many([EnqueueRequest("met.add", {"x": n}) for n in range(30)])
    mapp.enqueue_many([EnqueueRequest("met.reject", {}) for _ in range(4)])
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == 34,
        40,
        "34 results",
        interval=0.1,
    )

    def finished() -> float:
        samples = scrape(port)
        return total(samples, "stem_jobs_total", outcome="succeeded") + total(
            samples, "stem_jobs_total", outcome="failed"
        )

    wait_for(lambda: finished() == 34, 10, f"the counters to reach 34 (at {finished()})", interval=0.2)
    samples = scrape(port)
    assert total(samples, "stem_jobs_total", task="met.add", queue="default", outcome="succeeded") == 30
    assert total(samples, "stem_jobs_total", task="met.reject", queue="default", outcome="failed") == 4
    # A job handed back unstarted by a retiring process counts as released, then runs again.
    started = total(samples, "stem_job_run_seconds_count")
    assert started == 34
    assert total(samples, "stem_job_wait_seconds_count") == 34 + total(
        samples, "stem_jobs_total", outcome="released"
    )
    assert total(samples, "stem_claimed_jobs_total") >= 34
    assert total(samples, "stem_flush_batch_size_sum") >= 34
