"""Broadcast channels with real worker processes: one publish runs once on every subscriber and
nowhere else; a subscriber killed before acking runs the message again (at-least-once) or not
(at-most-once) when it comes back under the same name."""

from __future__ import annotations

import signal
import time
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.controlapp import APP
from tests.acceptance.workerapp import Workers, query, scalar, wait_registered
from tests.helpers import wait_for

Db = psycopg.Connection[Any]


def runs(db: Db, ns: str, task_id: str, event: str = "started") -> list[int]:
    rows = query(
        db, ns, "SELECT pid FROM {ns}.ledger WHERE task_id = %s AND event = %s ORDER BY at", [task_id, event]
    )
    return [int(r[0]) for r in rows]


def subscribers(db: Db, ns: str) -> int:
    return int(scalar(db, ns, "SELECT count(*) FROM {ns}.broadcast_subscriptions"))


@pytest.mark.timeout(60)
def test_a_broadcast_runs_once_on_each_subscriber_and_on_no_other_worker(
    capp: Stem, workers: Workers, db: Db, namespace: str
) -> None:
    subscribed = [workers.start(app=APP, extra=["--broadcast", "fleet"]) for _ in range(3)]
    bystander = workers.start(app=APP)
    wait_registered(db, namespace, {p.pid for p in [*subscribed, bystander]})
    wait_for(lambda: subscribers(db, namespace) == 3, 10, "three subscriptions")

    message = capp.enqueue("fleet.refresh", {"sleep": 0.2})
    assert getattr(message, "subscribers", None) == 3
    results = message.get(timeout=20)
    assert sorted(results.values()) == sorted(p.pid for p in subscribed)
    time.sleep(1.0)  # would anyone run it a second time?
    assert sorted(runs(db, namespace, message.id)) == sorted(p.pid for p in subscribed)
    assert sorted(runs(db, namespace, message.id, "finished")) == sorted(p.pid for p in subscribed)
    states = query(
        db,
        namespace,
        "SELECT state, attempts FROM {ns}.broadcast_deliveries WHERE task_id = %s",
        [message.id],
    )
    assert states == [("succeeded", 1)] * 3
    assert bystander.alive()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("task", "runs_again"), [("fleet.refresh", True), ("once.refresh", False)])
def test_a_subscriber_killed_before_acking(
    capp: Stem, workers: Workers, db: Db, namespace: str, task: str, runs_again: bool
) -> None:
    channel = task.split(".")[0]
    first = workers.start(app=APP, extra=["--broadcast", channel, "--name", "steady"])
    wait_registered(db, namespace, {first.pid})
    wait_for(lambda: subscribers(db, namespace) == 1, 10, "the subscription")
    message = capp.enqueue(task, {"sleep": 30})
    wait_for(lambda: runs(db, namespace, message.id) == [first.pid], 15, "the first run to start")
    first.signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = workers.start(app=APP, extra=["--broadcast", channel, "--name", "steady"])
    wait_registered(db, namespace, {second.pid})
    delivery = "SELECT state, attempts, error FROM {ns}.broadcast_deliveries WHERE task_id = %s"
    if runs_again:
        wait_for(lambda: len(runs(db, namespace, message.id)) == 2, 15, f"the second run\n{workers.logs()}")
        assert runs(db, namespace, message.id) == [first.pid, second.pid]
        state, attempts, _ = query(db, namespace, delivery, [message.id])[0]
        assert (state, attempts) == ("running", 2)
    else:
        wait_for(
            lambda: query(db, namespace, delivery, [message.id])[0][0] == "failed",
            15,
            "the delivery to close",
        )
        time.sleep(1.0)
        assert runs(db, namespace, message.id) == [first.pid]
        (_, attempts, error) = query(db, namespace, delivery, [message.id])[0]
        assert attempts == 1 and "not delivered again" in error
