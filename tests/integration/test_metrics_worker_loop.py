"""A worker's metrics filled from its own loops (claim, flush, heartbeat), in one process: what
a single-process ``--metrics-port`` serves."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stem_pg.client.app import Stem
from stem_pg.core.tasks import Reject
from stem_pg.metrics.worker import WorkerMetrics
from stem_pg.worker import Worker, WorkerSettings
from tests.acceptance.workerapp import scalar
from tests.helpers import wait_for
from tests.metrics_scrape import total


def test_worker_loops_feed_its_metrics(app: Stem, db: psycopg.Connection[Any], namespace: str) -> None:
    @app.task(name="met.slow")
    def slow() -> str:
        time.sleep(0.8)  # past a heartbeat: its lease is extended
        return "done"

    @app.task(name="met.reject")
    def reject() -> None:
        raise Reject("no")

    ids = [app.enqueue("met.slow").id for _ in range(3)] + [app.enqueue("met.reject").id]
    settings = WorkerSettings(queues=("default",), poll_interval=0.2, lease_seconds=1.0, shutdown_grace=5.0)
    metrics = WorkerMetrics(settings.queues, is_task=app.registry.__contains__)
    worker = Worker(app, settings, metrics=metrics)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == len(ids), 20, "the jobs"
        )
    finally:
        loop.call_soon_threadsafe(worker.request_stop)
        thread.join(timeout=20)
    assert not thread.is_alive()
    text = generate_latest(metrics.registry).decode()  # published as the worker stopped
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert total(samples, "stem_jobs_total", task="met.slow", outcome="succeeded") == 3
    assert total(samples, "stem_jobs_total", task="met.reject", outcome="failed") == 1
    assert total(samples, "stem_job_run_seconds_sum", task="met.slow") >= 3 * 0.8
    assert total(samples, "stem_job_wait_seconds_count") == 4
    assert total(samples, "stem_claimed_jobs_total", queue="default") == 4
    assert total(samples, "stem_claims_total", queue="default") >= 1
    assert total(samples, "stem_flush_batch_size_sum") == 4
    assert total(samples, "stem_lease_extensions_total") >= 1
    assert total(samples, "stem_jobs_in_flight", queue="default") == 0
