"""Execution order on one queue with a single slot: highest priority first, FIFO inside
a priority, and delayed jobs never before they are due."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.workerapp import Workers, query, scalar
from tests.helpers import wait_for

COUNTDOWN = 2.0


@pytest.mark.timeout(60)
def test_priorities_then_fifo_and_delays_respected(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    rng = random.Random(20240501)
    priorities = [rng.randrange(10) for _ in range(40)]
    # Each job takes 0.1 s, so the queue is still busy when the delayed ones fall due.
    immediate = [
        EnqueueRequest("acc.step", {"n": n, "sleep": 0.1}, priority=p) for n, p in enumerate(priorities)
    ]
    stem.enqueue_many(immediate)
    delayed_ids = [
        r.id
        for r in stem.enqueue_many(
            EnqueueRequest("acc.step", {"n": 100 + i, "sleep": 0.1}, priority=9, countdown=COUNTDOWN)
            for i in range(3)
        )
    ]
    total = len(immediate) + len(delayed_ids)

    workers.start(concurrency=1)
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == total,
        40,
        f"all jobs to finish\n{workers.logs()}",
    )
    assert dict(query(db, namespace, "SELECT state, count(*) FROM {ns}.results GROUP BY state")) == {
        "succeeded": total
    }

    started = [
        n for (n,) in query(db, namespace, "SELECT n FROM {ns}.ledger WHERE event = 'started' ORDER BY at")
    ]
    assert len(started) == total, "a job ran twice"
    expected = sorted(range(len(priorities)), key=lambda n: (-priorities[n], n))
    actual = [n for n in started if n < 100]
    assert actual == expected, list(zip(actual, [priorities[n] for n in actual], strict=True))
    # Delayed jobs of one priority keep their FIFO order too.
    assert [n for n in started if n >= 100] == [100, 101, 102]

    # The same database clock stamps enqueued_at and the handler's start.
    early = query(
        db,
        namespace,
        "SELECT l.n, r.enqueued_at, l.at FROM {ns}.ledger AS l JOIN {ns}.results AS r ON r.id = l.task_id"
        " WHERE l.task_id = ANY(%s) AND l.event = 'started'"
        " AND l.at < r.enqueued_at + make_interval(secs => %s)",
        [delayed_ids, COUNTDOWN],
    )
    assert early == [], f"delayed jobs started before their due time: {early}"
