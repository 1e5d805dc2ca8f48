"""Celery comparators' brokers: where they are, whether they answer, an empty queue, and
the CPU of the broker server (redis-server / RabbitMQ's beam.smp) next to the workers'.

Used by bench.celery_compare."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from bench.common import Proc, children, cpu_seconds

#: A database of its own on the shared Redis, so a purge touches nothing else.
BROKERS = {
    "redis": "redis://127.0.0.1:6379/9",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
LABELS = {"redis": "Celery/Redis", "amqp": "Celery/RabbitMQ"}
SERVER_PROCESS = {"redis": "redis-server", "amqp": "beam.smp"}
QUEUE = "bench_celery"


def unavailable(broker: str) -> str | None:
    """Why Celery on ``broker`` cannot run here (one line), or None."""
    if broker not in BROKERS:
        return f"unknown Celery broker {broker!r} (choose from {', '.join(BROKERS)})"
    try:
        import celery  # noqa: F401
    except ImportError:
        return "celery is not installed (pip install -e '.[bench]'): skipping the Celery comparators"
    url = urlparse(BROKERS[broker])
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 0), timeout=2):
            pass
    except OSError as exc:
        return f"{LABELS[broker]}: no broker at {url.hostname}:{url.port} ({exc}): skipped"
    return None


def parse_brokers(spec: str | None) -> list[str]:
    """``--celery redis,amqp`` -> ["redis", "amqp"] (empty when not given)."""
    return [b.strip() for b in (spec or "").split(",") if b.strip()]


def _app(broker: str) -> Any:
    """A producer app of its own per run (Celery caches its connection pool per app)."""
    from celery import Celery

    app = Celery("bench-producer", broker=BROKERS[broker], set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE, task_ignore_result=True, broker_connection_retry_on_startup=True
    )
    return app


def queue_op(app: Any, purge: bool) -> int:
    """Declare the queue; purge it if asked; returns the messages left in it."""
    from kombu import Queue

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        Queue(QUEUE, channel=channel).declare()
        if purge:
            channel.queue_purge(QUEUE)
        if hasattr(channel, "_size"):  # kombu's virtual transports (Redis): every priority list
            return int(channel._size(QUEUE))
        return int(channel.queue_declare(queue=QUEUE, passive=True).message_count)


def reset(broker: str) -> Any:
    """An app on ``broker`` with an empty queue (and, on Redis, no unacked left-overs)."""
    app = _app(broker)
    if broker == "redis":
        with app.connection_for_write() as conn:
            client = conn.default_channel.client
            client.delete("unacked", "unacked_index", "unacked_mutex")
    queue_op(app, purge=True)
    return app


def server_pids(broker: str) -> list[int]:
    """The broker server's process(es), found by name in /proc (port-matched for Redis)."""
    port = str(urlparse(BROKERS[broker]).port)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if comm == SERVER_PROCESS[broker] and (broker != "redis" or port in cmdline):
            found.append(int(entry))
    return found


class ServerCpuMeter:
    """CPU of the Celery worker processes (the consumer and its pool children) and of the
    broker server between ``start()`` and ``stop()``; CpuMeter's interface."""

    def __init__(self, procs: Sequence[Proc], servers: Sequence[int]) -> None:
        self.procs, self.servers = procs, list(servers)
        self.started = False
        self.jobs_at_start = 0
        self._start: dict[str, dict[int, float]] = {}
        self.worker_s = self.server_s = 0.0

    def _snapshot(self) -> dict[str, dict[int, float]]:
        workers = [pid for p in self.procs for pid in (p.pid, *children(p.pid))]
        return {
            "workers": {pid: cpu_seconds(pid) for pid in workers},
            "server": {pid: cpu_seconds(pid) for pid in self.servers},
        }

    def start(self, jobs_done: int) -> None:
        self._start, self.jobs_at_start, self.started = self._snapshot(), jobs_done, True

    def stop(self) -> None:
        end = self._snapshot()
        for kind, attr in (("workers", "worker_s"), ("server", "server_s")):
            before = self._start.get(kind, {})
            setattr(self, attr, sum(t - before.get(pid, 0.0) for pid, t in end[kind].items()))

    def per_job_us(self, jobs: int) -> dict[str, float]:
        n = max(1, jobs - self.jobs_at_start)
        return {
            "cpu_worker_us_per_job": self.worker_s / n * 1e6,
            "cpu_server_us_per_job": self.server_s / n * 1e6,
            "cpu_total_us_per_job": (self.worker_s + self.server_s) / n * 1e6,
        }
