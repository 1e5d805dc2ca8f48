"""A concurrency limit with real worker processes: a worker SIGKILLed while it holds the
only slot does not leak it; the slot comes back once the job's lease expires and the
rescuer puts the job back, and the limit still holds (one job at a time)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.flowapp import make_flow_app
from tests.acceptance.workerapp import Workers, ledger_app, query, wait_registered
from tests.helpers import run_stem, wait_for

APP = "tests.acceptance.flowapp:app"
LEASE = 2.0


@pytest.fixture
def flow(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[Stem]:
    with ledger_app(make_flow_app, database_url, namespace, db) as application:
        yield application


def _events(db: psycopg.Connection[Any], namespace: str) -> list[tuple[Any, ...]]:
    return query(db, namespace, "SELECT n, pid, attempt, event, at FROM {ns}.ledger ORDER BY at")


@pytest.mark.timeout(60)
def test_a_sigkilled_worker_gives_its_concurrency_slot_back_after_the_lease(
    flow: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(app=APP, lease=LEASE, concurrency=4)
    wait_registered(db, namespace, {first.pid})
    flow.enqueue("flow.slot", {"n": 1, "sleeps": [60, 0]})
    wait_for(lambda: _events(db, namespace), 15, "job 1 to start")
    flow.enqueue("flow.slot", {"n": 2})
    first.signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = workers.start(app=APP, lease=LEASE, concurrency=4)
    finished = "SELECT count(*) FROM {ns}.ledger WHERE event = 'finished'"
    wait_for(lambda: query(db, namespace, finished)[0][0] == 2, 45, f"both jobs to finish\n{workers.logs()}")

    events = _events(db, namespace)
    killed_start = events[0][4]
    later = events[1:]
    assert {(n, pid) for n, pid, _, _, _ in later} == {(1, second.pid), (2, second.pid)}
    # Nothing started while the dead worker's lease held the slot ...
    assert all((at - killed_start).total_seconds() >= LEASE for *_, at in later)
    # ... and after that, one job at a time: each start follows the previous finish.
    kinds = [event for _, _, _, event, _ in later]
    assert kinds == ["started", "finished", "started", "finished"]


@pytest.mark.timeout(60)
def test_a_limited_task_sent_to_a_queue_without_limits_is_still_limited(
    flow: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    # flow.slot is routed to 'default'; sent to 'other' (no limit of its own, no limited
    # task routed there) by an explicit queue=, its concurrency limit of 1 still holds.
    started = [
        workers.start(app=APP, concurrency=4, extra=["--queue", "default", "--queue", "other"])
        for _ in range(2)
    ]
    wait_registered(db, namespace, {w.pid for w in started})
    for n in range(4):
        flow.enqueue("flow.slot", {"n": n, "sleeps": [0.3]}, queue="other")
    finished = "SELECT count(*) FROM {ns}.ledger WHERE event = 'finished'"
    wait_for(lambda: query(db, namespace, finished)[0][0] == 4, 30, f"4 jobs to finish\n{workers.logs()}")
    kinds = [event for _, _, _, event, _ in _events(db, namespace)]
    assert kinds == ["started", "finished"] * 4, kinds


@pytest.mark.timeout(60)
def test_stem_worker_inspect_shows_the_limited_queues_and_the_limits(
    flow: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    proc = workers.start(app=APP, concurrency=4)
    wait_registered(db, namespace, {proc.pid})
    shown = run_stem(database_url, "worker", "inspect", "--namespace", namespace, "--timeout", "5s")
    assert shown.returncode == 0, shown.stderr
    assert "limited_queues: default" in shown.stdout
    assert "limits (their state: SELECT * FROM <namespace>.limiter_state):" in shown.stdout
    [row] = [line for line in shown.stdout.splitlines() if "task:flow.slot" in line]
    assert "concurrency" in row and " 1 " in f" {row} "
