"""The Celery application the comparison's workers load (``celery -A bench.celery_app worker``).

The broker comes from ``BENCH_CELERY_BROKER`` (a URL; bench.celery_compare sets it).
Results are ignored (``task_ignore_result``) unless ``BENCH_CELERY_RESULTS`` names a
result backend URL. Every handler tells the harness it started through
``bench.common.PROBE``, exactly like bench.stem_app and bench.pgq_app.
"""

from __future__ import annotations

import os

from celery import Celery

from bench.common import PROBE, spend_cpu

QUEUE = "bench_celery"  # bench.celery_compare.QUEUE

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/9")
RESULTS = os.environ.get("BENCH_CELERY_RESULTS") or None

app = Celery("bench", broker=BROKER, backend=RESULTS)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=RESULTS is None,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


@app.task(name="noop")
def noop() -> None:
    """The throughput task: does nothing."""
    PROBE.started()


@app.task(name="lat")
def lat(t: float) -> None:
    """The latency task: ``t`` is the time.time() taken just before send_task."""
    PROBE.latency(t)


@app.task(name="burn")
def burn(ms: float = 1.0) -> None:
    """The CPU-bound task: spends ``ms`` of its thread's CPU time."""
    PROBE.started()
    spend_cpu(ms)
