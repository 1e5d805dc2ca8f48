"""The heartbeat topic: a worker's registration, beats and stop reach a LISTENer on
``<namespace>:heartbeats``, each beat within the worker's heartbeat interval, and its payload
matches the workers table."""

from __future__ import annotations

import time

import psycopg

from stem_pg.client.app import Stem
from stem_pg.core.heartbeats import Beat
from stem_pg.db.heartbeats import heartbeats, listen_heartbeats
from tests.helpers import running_worker, wait_for

LEASE = 1.5  # the heartbeat runs at a third of the lease: every 0.5 s


def _next_beat(conn: psycopg.Connection[tuple[object, ...]], within: float) -> tuple[Beat, float]:
    started = time.monotonic()
    for beat in heartbeats(conn, timeout=within):
        return beat, time.monotonic() - started
    raise AssertionError(f"no heartbeat on the topic within {within}s")


def test_beats_arrive_on_the_topic_within_the_heartbeat_interval(database_url: str, app: Stem) -> None:
    @app.task(name="topic.add")
    def add(x: int, y: int) -> int:
        return x + y

    with psycopg.connect(database_url, autocommit=True) as listener:
        listen_heartbeats(listener, app.namespace)
        with running_worker(app, worker_id="w-topic", lease_seconds=LEASE, concurrency=3) as worker:
            # The worker builds its parts on its own thread, once it runs.
            heartbeat = wait_for(lambda: getattr(worker, "heartbeat", None), 10, "the worker's parts")
            interval = heartbeat.interval()
            assert interval == LEASE / 3
            registered, _ = _next_beat(listener, within=10)
            assert (registered.worker, registered.status, registered.concurrency) == ("w-topic", "alive", 3)
            for _ in range(3):
                beat, waited = _next_beat(listener, within=interval + 0.5)
                assert beat.worker == "w-topic" and beat.status == "alive"
                assert waited < interval + 0.5
            assert beat.uptime >= registered.uptime
            assert (beat.inflight, beat.processed, beat.failed) == (0, 0, 0)
            assert app.enqueue("topic.add", {"x": 1, "y": 2}).get(timeout=10) == 3
            counted = [_next_beat(listener, within=interval + 0.5)[0] for _ in range(2)][-1]
            assert (counted.processed, counted.failed) == (1, 0)
        stopped = [b for b in heartbeats(listener, timeout=0.5) if b.status == "stopped"]
        assert [b.worker for b in stopped] == ["w-topic"]
