"""The control plane with in-process workers: commands and replies as rows (woken by NOTIFY),
large replies too, silent workers reported, namespaces kept apart, queues paused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.config.settings import StemConfig
from stem_pg.core.control import NOTIFY_LIMIT, Command, ControlError
from stem_pg.core.namespaces import Channels
from stem_pg.worker import Worker
from tests.helpers import migrated_namespace, wait_for
from tests.helpers import running_worker as _running_worker

Db = psycopg.Connection[tuple[Any, ...]]


def _sql(db: Db, ns: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = db.execute(sql.SQL(text).format(ns=sql.Identifier(ns)), params)
    return cur.fetchall() if cur.description else []


@contextmanager
def running_worker(app: Stem, **settings: Any) -> Iterator[Worker]:
    """A worker in a thread, yielded once it is registered (and so listening)."""
    with _running_worker(app, **settings) as worker:
        wait_for(lambda: worker.state.last_heartbeat_at is not None)
        yield worker


@pytest.fixture
def control(database_url: str, namespace: str) -> Control:
    return Control(database_url, namespace)


@pytest.fixture
def other(database_url: str) -> Iterator[Stem]:
    """An application on a second migrated namespace."""
    with migrated_namespace(database_url) as name:
        stem = Stem(database_url, namespace=name, config=StemConfig())
        yield stem
        stem.close()


def test_ping_stats_and_inspect_answer_from_each_worker(app: Stem, control: Control) -> None:
    started = threading.Event()
    release = threading.Event()

    @app.task(name="hold")
    def hold() -> None:
        started.set()
        release.wait(10)

    with running_worker(app) as first, running_worker(app, concurrency=3) as second:
        pong = control.ping(timeout=5)
        assert set(pong.replies) == {first.id, second.id}
        assert pong.missing == []
        job = app.enqueue("hold")
        assert started.wait(10)
        stats = control.stats(timeout=5)
        busy = [w for w, r in stats.replies.items() if r.data["active"] == 1]
        assert len(busy) == 1
        data = stats.replies[second.id].data
        assert (data["concurrency"], data["prefetch_limit"], data["queues"]) == (3, 6, ["default"])
        assert data["last_heartbeat"] is not None
        inspect = control.inspect(workers=busy, timeout=5)
        assert set(inspect.replies) == set(busy)
        active = inspect.replies[busy[0]].data["active"]
        assert [(a["id"], a["task"]) for a in active] == [(job.id, "hold")]
        assert active[0]["runtime"] >= 0
        assert inspect.replies[busy[0]].data["registered"] == ["hold"]
        release.set()
        job.get(timeout=10)
        stats = control.stats(timeout=5)
        assert sum(r.data["succeeded"] for r in stats.replies.values()) == 1


def test_a_large_reply_travels_through_the_reply_table(app: Stem, control: Control, db: Db) -> None:
    for n in range(200):
        app.task(name=f"a.rather.long.task.name.to.fill.the.reply.{n:04d}")(lambda: None)
    with running_worker(app) as worker:
        result = control.inspect(timeout=5)
    registered = result.replies[worker.id].data["registered"]
    assert len(registered) == 200
    assert len(",".join(registered)) > NOTIFY_LIMIT
    assert _sql(db, app.namespace, "SELECT count(*) FROM {ns}.control_replies") == [(0,)]


def test_silent_workers_are_listed_and_namespaces_do_not_mix(
    app: Stem, other: Stem, control: Control, db: Db
) -> None:
    _sql(
        db,
        app.namespace,
        "INSERT INTO {ns}.workers (id, host, pid, queues, concurrency) VALUES ('ghost', 'h', 1, '{{q}}', 1)",
    )
    with running_worker(app) as mine, running_worker(other) as theirs:
        started = time.monotonic()
        result = control.ping(timeout=1)
        assert time.monotonic() - started >= 1, "waits for the silent worker until the timeout"
        assert set(result.replies) == {mine.id}
        assert result.missing == ["ghost"]
        assert set(Control(control.url, other.namespace).ping(timeout=5).replies) == {theirs.id}


def test_a_command_for_one_worker_reaches_only_it(app: Stem, control: Control) -> None:
    with running_worker(app) as first, running_worker(app) as second:
        result = control.ping(workers=[second.id], timeout=5)
        assert set(result.replies) == {second.id}
        assert first.id not in result.missing


def test_shutdown_command_stops_the_worker(app: Stem, control: Control, db: Db) -> None:
    with running_worker(app) as worker:
        result = control.shutdown("warm", timeout=5)
        assert result.replies[worker.id].data == {"shutdown": "warm"}
        wait_for(lambda: worker.state.stopping and worker.stopped_by_command, 5)
    assert worker.exit_code == 0
    assert _sql(db, app.namespace, "SELECT stopped_at IS NOT NULL FROM {ns}.workers") == [(True,)]


def test_bad_commands_are_refused_and_ignored(app: Stem, control: Control, database_url: str) -> None:
    with pytest.raises(ControlError, match="unknown control command"):
        Command("reboot")
    with running_worker(app) as worker:
        with psycopg.connect(database_url, autocommit=True) as conn:
            channel = Channels(app.namespace).control
            conn.execute("SELECT pg_notify(%s, 'garbage')", (channel,))
        bad = control.shutdown("sideways", timeout=5)  # type: ignore[arg-type]
        assert not bad.replies[worker.id].ok
        assert "unknown shutdown mode" in (bad.replies[worker.id].error or "")
        assert set(control.ping(timeout=5).replies) == {worker.id}, "still answering"


def test_a_paused_queue_is_not_consumed_until_resumed_even_after_a_restart(
    app: Stem, control: Control, db: Db
) -> None:
    ran: list[str] = []

    @app.task(name="work")
    def work() -> None:
        ran.append("x")

    with running_worker(app) as worker:
        paused = control.pause("default", reason="deploy", by="test", timeout=5)
        assert paused.replies[worker.id].data["paused"] == ["default"]
        assert paused.queue is not None and paused.queue.reason == "deploy"
        job = app.enqueue("work")
        time.sleep(0.6)
        assert job.state == "queued"
        inspect = control.inspect(timeout=5).replies[worker.id].data
        assert inspect["paused"] == ["default"]
    assert _sql(db, app.namespace, "SELECT queue, reason FROM {ns}.paused_queues") == [("default", "deploy")]
    with running_worker(app):
        time.sleep(0.6)
        assert job.state == "queued" and ran == []
        resumed = control.resume("default", timeout=5)
        assert resumed.queue is not None
        job.get(timeout=5)
    assert ran == ["x"]
    assert control.resume("default", timeout=0.1).queue is None
    assert control.paused() == []


def test_old_commands_and_replies_are_pruned_by_the_housekeeping(app: Stem, db: Db) -> None:
    ns = app.namespace
    _sql(
        db,
        ns,
        "INSERT INTO {ns}.control_commands (request_id, command, created_at)"
        " VALUES ('old', 'ping', now() - interval '1 hour'), ('new', 'ping', now())",
    )
    _sql(
        db,
        ns,
        "INSERT INTO {ns}.control_replies (request_id, worker_id, payload, created_at)"
        " VALUES ('old', 'w', '{{}}', now() - interval '1 hour'), ('new', 'w', '{{}}', now())",
    )
    with running_worker(app, maintenance_interval=0.2, prune_interval=0.2):
        wait_for(lambda: _sql(db, ns, "SELECT request_id FROM {ns}.control_commands") == [("new",)], 10)
        wait_for(lambda: _sql(db, ns, "SELECT request_id FROM {ns}.control_replies") == [("new",)], 10)
