"""Revokes on a real Postgres: waiting jobs cancelled in the revoke's transaction, running ones
terminated, revoked ids honoured by workers that were not there when it happened."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.core.errors import TaskCancelled, TaskError
from stem_pg.db.stores.control import RevokeRow
from stem_pg.db.stores.jobs import JobStore
from stem_pg.worker.context import TaskContext
from stem_pg.worker.revokes import RevokeSet
from tests.helpers import running_worker

Db = psycopg.Connection[tuple[Any, ...]]


def _rows(db: Db, ns: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = db.execute(sql.SQL(text).format(ns=sql.Identifier(ns)), params)
    return cur.fetchall() if cur.description else []


def test_revoking_a_waiting_job_cancels_it_at_once_with_the_reason(app: Stem, db: Db) -> None:
    later = app.enqueue("never.runs", {}, countdown=3600)
    retried = app.enqueue("never.runs", {})
    _rows(db, app.namespace, "UPDATE {ns}.jobs SET state = 'retried', attempts = 1 WHERE id = %s", retried.id)

    outcome = app.revoke(later.id, reason="not needed")
    assert (outcome.outcome, outcome.state) == ("cancelled", "cancelled")
    assert app.revoke(retried.id).outcome == "cancelled"
    with pytest.raises(TaskCancelled, match="revoked: not needed"):
        later.get(timeout=1)
    assert _rows(db, app.namespace, "SELECT count(*) FROM {ns}.jobs") == [(0,)]
    assert _rows(db, app.namespace, "SELECT task_id, reason FROM {ns}.revokes ORDER BY version") == [
        (later.id, "not needed"),
        (retried.id, None),
    ]


def test_revoking_a_finished_task_changes_nothing_and_says_so(app: Stem, db: Db) -> None:
    @app.task(name="quick")
    def quick() -> int:
        return 7

    with running_worker(app):
        result = app.enqueue("quick")
        assert result.get(timeout=10) == 7
    before = _rows(db, app.namespace, "SELECT * FROM {ns}.results")
    outcome = app.revoke(result.id, terminate=True)
    assert (outcome.outcome, outcome.state, outcome.version) == ("finished", "succeeded", None)
    assert _rows(db, app.namespace, "SELECT * FROM {ns}.results") == before
    assert _rows(db, app.namespace, "SELECT count(*) FROM {ns}.revokes") == [(0,)]


def test_an_unknown_id_is_recorded_and_never_starts(app: Stem, db: Db) -> None:
    ran: list[str] = []

    @app.task(name="record")
    def record(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    outcome = app.revoke("future-id", reason="changed my mind")
    assert (outcome.outcome, outcome.state) == ("unknown", None)
    with running_worker(app):
        doomed = app.enqueue("record", {}, task_id="future-id")
        fine = app.enqueue("record", {})
        with pytest.raises(TaskCancelled, match="changed my mind"):
            doomed.get(timeout=10)
        fine.get(timeout=10)
    assert ran == [fine.id]


def test_a_worker_that_was_not_there_honours_the_revoke_of_a_rescued_job(
    app: Stem, database_url: str, db: Db
) -> None:
    """Revoked while running on a worker that then died: the rescuer requeues it and a
    worker started afterwards (it loads unexpired revokes first) cancels it unrun."""
    ran: list[str] = []

    @app.task(name="record")
    def record(ctx: TaskContext) -> None:
        ran.append(ctx.task_id)

    job = app.enqueue("record", {})
    store = JobStore(app.queries, result_ttl=60)

    async def claim_as_a_worker_that_dies() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            token = str(uuid.uuid4())
            jobs = await store.claim(
                conn, queue="default", limit=1, worker_id="dead-worker", token=token, lease_seconds=30
            )
            return [j.id for j in jobs]

    assert asyncio.run(claim_as_a_worker_that_dies()) == [job.id]
    outcome = app.revoke(job.id, reason="bad input")
    assert (outcome.outcome, outcome.state, outcome.worker_id) == ("revoked", "running", "dead-worker")
    _rows(db, app.namespace, "UPDATE {ns}.jobs SET lease_expires_at = now() - interval '1 second'")
    with running_worker(app, maintenance_interval=0.2), pytest.raises(TaskCancelled, match="bad input"):
        job.get(timeout=10)
    assert ran == []


def test_terminate_cancels_a_running_async_task_promptly(app: Stem, database_url: str, db: Db) -> None:
    started = threading.Event()

    @app.task(name="forever")
    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    @app.task(name="after")
    async def after() -> str:
        await asyncio.sleep(0.01)
        return "ran"

    # One slot: the runner that was cancelled inside "forever" must serve the next job.
    with running_worker(app, concurrency=1) as worker:
        job = app.enqueue("forever")
        assert started.wait(10)
        revoked = time.monotonic()
        result = Control(database_url, app.namespace).revoke([job.id], terminate=True, reason="stop")
        with pytest.raises(TaskCancelled, match="revoked: stop"):
            job.get(timeout=5)
        assert time.monotonic() - revoked < 1.0
        assert result.replies[worker.id].data["terminated"] == [job.id]
        assert worker.counts["cancelled"] == 1
        assert app.enqueue("after").get(timeout=5) == "ran"
    assert sorted(_rows(db, app.namespace, "SELECT state, attempts FROM {ns}.results")) == [
        ("cancelled", 1),
        ("succeeded", 1),
    ]
    assert _rows(db, app.namespace, "SELECT count(*) FROM {ns}.dead_letters") == [(0,)]


def test_terminate_stops_a_sync_task_at_its_next_checkpoint(app: Stem) -> None:
    beats: list[int] = []
    started = threading.Event()

    @app.task(name="loop")
    def loop(ctx: TaskContext) -> None:
        started.set()
        for n in range(600):
            ctx.heartbeat()
            beats.append(n)
            time.sleep(0.05)

    with running_worker(app):
        job = app.enqueue("loop")
        assert started.wait(10)
        app.revoke(job.id, terminate=True)
        with pytest.raises(TaskCancelled):
            job.get(timeout=5)
        stopped_at = len(beats)
        time.sleep(0.3)
        assert len(beats) == stopped_at, "the handler went on after its checkpoint raised"
    assert stopped_at < 100


def test_revoke_without_terminate_lets_a_running_task_finish(app: Stem) -> None:
    go = threading.Event()
    started = threading.Event()

    @app.task(name="wait")
    def wait() -> str:
        started.set()
        go.wait(10)
        return "finished"

    with running_worker(app):
        job = app.enqueue("wait")
        assert started.wait(10)
        assert app.revoke(job.id).outcome == "revoked"
        go.set()
        assert job.get(timeout=10) == "finished"


def test_revoke_checks_its_arguments(app: Stem, database_url: str) -> None:
    control = Control(database_url, app.namespace)
    with pytest.raises(TaskError, match="at least one"):
        control.revoke([], timeout=None)
    with pytest.raises(TaskError, match="positive"):
        control.revoke(["x"], expires_in=0, timeout=None)


def test_revoke_set_catches_up_by_version_and_forgets_expired_ids() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    clock = {"now": now}
    revokes = RevokeSet(now=lambda: clock["now"])
    hour = timedelta(hours=1)
    fresh = revokes.apply(
        [RevokeRow(1, "a", "why", False, now + hour), RevokeRow(2, "b", None, True, now + 2 * hour)]
    )
    assert [r.task_id for r in fresh] == ["a", "b"]
    assert revokes.version == 2
    assert revokes.reason("a") == "revoked: why"
    assert revokes.reason("b") == "revoked"
    assert revokes.reason("c") is None
    merged = revokes.apply([RevokeRow(3, "a", None, True, now + 3 * hour)])
    assert merged[0].terminate and merged[0].reason == "why"
    clock["now"] = now + 2 * hour
    assert revokes.ids() == ["a"]


def test_revoking_many_long_ids_at_once(app: Stem, database_url: str) -> None:
    ids = [f"{n:03d}-" + "x" * 250 for n in range(100)]
    for task_id in ids:
        app.enqueue("never.runs", {}, task_id=task_id, countdown=3600)
    result = Control(database_url, app.namespace).revoke(ids, reason="bulk", timeout=0.2)
    assert [o.outcome for o in result.revokes] == ["cancelled"] * 100
