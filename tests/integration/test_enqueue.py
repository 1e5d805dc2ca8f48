"""Enqueue paths: transactional, bulk, idempotent, validated — on a real Postgres."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from stem_pg.client import enqueue as enqueue_module
from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import RoutingConfigError, TaskError
from tests.helpers import running_worker, wait_for


def _jobs(db: psycopg.Connection, ns: str) -> list[tuple]:  # type: ignore[type-arg]
    query = sql.SQL("SELECT id, queue, priority FROM {}.jobs ORDER BY seq").format(sql.Identifier(ns))
    return db.execute(query).fetchall()


def _listening(database_url: str, app: Stem) -> psycopg.Connection[Any]:
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(app.queries.channels.jobs)))
    return listener


def _heard(listener: psycopg.Connection[Any], timeout: float = 0.5) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=timeout)]


def test_psycopg_transactional_enqueue(app: Stem, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        app.enqueue("t", {"n": 1}, task_id="rolled-back", connection=conn)
        conn.rollback()
        app.enqueue("t", {"n": 2}, task_id="committed", connection=conn)
        app.testing.assert_not_enqueued("t")  # not visible before commit
        conn.commit()
    assert [(job.id, job.kwargs) for job in app.testing.enqueued_jobs("t")] == [("committed", {"n": 2})]


def test_sqlalchemy_session_and_connection(app: Stem, database_url: str) -> None:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as session:
        app.enqueue("t", {"n": 1}, task_id="session-rolled-back", connection=session)
        session.rollback()
    with Session(engine) as session, session.begin():
        app.enqueue_many([("t", {"n": 2}), ("t", {"n": 3})], connection=session)
    with engine.begin() as connection:
        app.enqueue("t", {"n": 4}, task_id="sa-connection", connection=connection)
    engine.dispose()
    app.testing.assert_not_enqueued("t", kwargs={"n": 1})
    assert [job.kwargs for job in app.testing.enqueued_jobs()] == [{"n": 2}, {"n": 3}, {"n": 4}]


def test_enqueue_many_sends_one_notify_per_queue(app: Stem, database_url: str) -> None:
    with _listening(database_url, app) as listener:
        app.enqueue_many(
            [EnqueueRequest("t", queue="a") for _ in range(500)]
            + [EnqueueRequest("t", queue="b") for _ in range(500)]
        )
        notes = _heard(listener)
    assert sorted(notes) == ["a", "b"]


def test_task_id_makes_enqueue_idempotent(app: Stem) -> None:
    first = app.enqueue("t", {"v": 1}, task_id="same")
    second = app.enqueue("t", {"v": 2}, task_id="same")
    assert first.id == second.id == "same"
    app.testing.assert_enqueued("t", kwargs={"v": 1}, count=1)  # the first one, left alone
    assert len(app.testing.enqueued_jobs()) == 1


def test_routing_decides_queue_and_clamps_priority(
    database_url: str, namespace: str, db: psycopg.Connection
) -> None:
    routing = load_routing_yaml(
        """
default_queue: {alias: default, queue: primary}
queues:
  primary: {priority_range: [0, 5]}
  reports: {priority_range: {min: 2, max: 4}}
routes:
  - match: {task: "reports.*"}
    target: {type: queue, name: reports}
"""
    )
    app = Stem(database_url, namespace=namespace, routing=routing, config=StemConfig())
    app.enqueue("reports.daily", {}, task_id="r", priority=9)
    app.enqueue("other", {}, task_id="o", priority=9)
    app.enqueue("other", {}, task_id="low", priority=0, queue="reports")
    assert _jobs(db, namespace) == [("r", "reports", 4), ("o", "primary", 5), ("low", "reports", 2)]
    with pytest.raises(RoutingConfigError, match="nope"):
        app.enqueue("other", {}, queue="nope")
    app.close()


@pytest.mark.parametrize(
    ("kwargs", "options", "message"),
    [
        ({"when": datetime(2030, 1, 1)}, {}, "argument 'when' must be JSON"),
        ({"x": float("nan")}, {}, "argument 'x' must be JSON"),
        ({}, {"eta": datetime(2030, 1, 1)}, "timezone-aware"),
        ({}, {"countdown": -1}, "countdown must be a finite number"),
        ({}, {"countdown": 1, "eta": datetime.now().astimezone()}, "either eta or countdown"),
        ({}, {"expires": "soon"}, "expires must be a finite number"),
        ({}, {"priority": "high"}, "priority must be an integer"),
        ({}, {"task_id": ""}, "task_id must be a non-empty string"),
    ],
)
def test_bad_enqueue_arguments_fail_clearly(app: Stem, kwargs: dict, options: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(TaskError, match=message):
        app.enqueue("t", kwargs, **options)


def test_delayed_and_expired_jobs(app: Stem) -> None:
    ran: list[str] = []

    @app.task(name="t")
    def handler(label: str) -> None:
        ran.append(label)

    with running_worker(app):
        expired = app.enqueue("t", {"label": "expired"}, countdown=0.5, expires=timedelta(seconds=0.2))
        delayed = app.enqueue("t", {"label": "delayed"}, countdown=0.5)
        assert delayed.get(timeout=10) is None
        wait_for(lambda: expired.state == "cancelled")
    assert ran == ["delayed"]


async def test_async_enqueue_and_wait(app: Stem) -> None:
    @app.task(name="double")
    async def double(n: int) -> int:
        return n * 2

    with running_worker(app):
        handle = await app.aenqueue("double", {"n": 21})
        assert await handle.wait(timeout=10) == 42
        with pytest.raises(TimeoutError):
            await (await app.aenqueue("double", {"n": 1}, countdown=60)).wait(timeout=0.3)
    await app.aclose()
    await asyncio.sleep(0)


def test_a_bad_request_in_a_large_batch_inserts_nothing(
    app: Stem,
    database_url: str,
    db: psycopg.Connection,
) -> None:
    """enqueue_many streams big batches into COPY while it plans them: a bad request found
    midway must still fail the whole batch with its clear error, on the pool and inside
    the caller's transaction (which stays usable)."""
    requests: list[tuple[str, dict[str, object]]] = [("t", {"i": i}) for i in range(500)]
    requests[300] = ("t", {"when": datetime.now()})
    count = sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(app.namespace))
    with pytest.raises(TaskError, match="argument 'when' must be JSON-serialisable"):
        app.enqueue_many(requests)
    assert db.execute(count).fetchone() == (0,)
    with psycopg.connect(database_url) as conn:
        with pytest.raises(TaskError, match="argument 'when'"):
            app.enqueue_many(requests, connection=conn)
        mixed = [EnqueueRequest("t", {"i": i}, task_id=f"given-{i}" if i % 2 else None) for i in range(400)]
        handles = app.enqueue_many(mixed, connection=conn)
        conn.commit()
    assert [h.id for h in handles][1::2] == [f"given-{i}" for i in range(1, 400, 2)]
    assert db.execute(count).fetchone() == (400,)


def test_a_lone_enqueue_wakes_the_workers_from_its_insert(
    app: Stem, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone in its process, also right behind another (a loop), an enqueue's INSERT
    statement sends the NOTIFY itself: no wake-up step after the commit, no thread.
    Delayed jobs and ids that are already live wake nobody."""

    def no_wake_after_commit(*args: Any) -> None:
        raise AssertionError("the insert should have announced the job")

    monkeypatch.setattr(app.backend, "wake", no_wake_after_commit)
    with _listening(database_url, app) as listener:
        handle = app.enqueue("t", queue="alone")
        app.enqueue("t", queue="alone")  # back to back
        assert _heard(listener) == ["alone", "alone"]
        app.enqueue("t", queue="later", countdown=60)
        app.enqueue("t", queue="alone", task_id=handle.id)  # live already: left alone
        assert _heard(listener) == []
    assert app.waker._thread is None


async def test_a_lone_idle_async_enqueue_wakes_the_workers_from_its_insert(
    app: Stem, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_wake_after_commit(*args: Any) -> None:
        raise AssertionError("the insert should have announced the job")

    monkeypatch.setattr(app.backend, "awake", no_wake_after_commit)
    with _listening(database_url, app) as listener:
        await app.aenqueue("t", queue="async-alone")
        assert _heard(listener) == ["async-alone"]
    await app.aclose()


def test_concurrent_enqueues_announce_through_the_waker_after_their_commits(
    app: Stem, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another enqueue of its process is under way, the waker thread sends the
    wake-ups, one NOTIFY per queue for the commits that asked."""
    with _listening(database_url, app) as listener:
        with app.waker.enqueueing():  # another enqueue under way in this process
            gate = threading.Event()
            release = app.waker._wanted.wait

            def held(timeout: float | None = None) -> bool:
                gate.wait(5)  # keep the thread from sending until both commits asked
                return release(timeout)

            app.waker._wanted.wait = held  # type: ignore[method-assign]
            app.enqueue("t", queue="busy")
            app.enqueue("t", queue="busy")
            assert app.waker._thread is not None
            gate.set()
        assert _heard(listener, timeout=1) == ["busy"]


def test_a_lone_enqueue_whose_connection_dies_after_the_commit_still_succeeds_and_wakes(
    app: Stem, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jobs are committed before the wake-up is sent: if the connection is killed in
    between, enqueue_many() still returns the jobs and the waker thread sends the wake-up."""
    insert = enqueue_module.insert_planned_sync

    def insert_then_lose_the_connection(conn: psycopg.Connection[Any], *args: Any, **kw: Any) -> list[str]:
        ids = insert(conn, *args, **kw)
        with psycopg.connect(database_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        return ids

    monkeypatch.setattr(enqueue_module, "insert_planned_sync", insert_then_lose_the_connection)
    with _listening(database_url, app) as listener:
        # Two jobs: one statement inserts them, their wake-up comes after the commit.
        handles = app.enqueue_many([EnqueueRequest("t", queue="survivor")] * 2)
        assert _heard(listener, timeout=2) == ["survivor"]
        jobs = sql.Identifier(app.namespace, "jobs")
        query = sql.SQL("SELECT count(*) FROM {} WHERE id = ANY(%s)").format(jobs)
        assert listener.execute(query, ([h.id for h in handles],)).fetchall() == [(2,)]
    assert app.waker._thread is not None  # the fallback went through the thread


def test_wake_ups_come_at_commit_from_every_kind_of_writer(app: Stem, database_url: str) -> None:
    """Workers are woken once the insert commits: the app's enqueue (its pool inserts with
    stem.client_notifies on and the waker announces the commit), a caller's transaction at
    its commit (none on rollback), also on one of the app's own pool connections, and plain
    SQL (the insert trigger); delayed jobs wake nobody."""
    with _listening(database_url, app) as listener:

        def payloads() -> list[str]:
            return sorted(_heard(listener, timeout=0.3))

        app.enqueue("t", queue="pool")
        app.enqueue("t", queue="later", countdown=60)
        assert payloads() == ["pool"]
        with psycopg.connect(database_url) as caller:
            app.enqueue("t", queue="caller", connection=caller)
            assert payloads() == []  # not before the caller commits
            caller.commit()
            assert payloads() == ["caller"]
            app.enqueue("t", queue="rolled-back", connection=caller)
            caller.rollback()
            assert payloads() == []
        with app.pool.connection() as pooled:
            assert pooled.execute("SHOW stem.client_notifies").fetchone() == ("on",)
            with pooled.transaction():
                app.enqueue("t", queue="pooled-tx", connection=pooled)
            assert payloads() == ["pooled-tx"]
        with psycopg.connect(database_url, autocommit=True) as plain:
            plain.execute(
                sql.SQL("INSERT INTO {}.jobs (id, task, queue) VALUES ('sql-1', 't', 'by-sql')").format(
                    sql.Identifier(app.namespace)
                )
            )
        assert payloads() == ["by-sql"]


def test_a_large_batch_that_begins_the_callers_transaction_rolls_back_with_it(
    app: Stem, database_url: str, db: psycopg.Connection
) -> None:
    """A COPY batch as the first statement on a connection outside autocommit: psycopg's own
    transaction block would BEGIN and COMMIT it by itself; the caller's rollback must win."""
    count = sql.SQL("SELECT count(*) FROM {}.jobs").format(sql.Identifier(app.namespace))
    with psycopg.connect(database_url) as conn:
        app.enqueue_many([("t", {"i": i}) for i in range(300)], connection=conn)
        conn.rollback()
        assert db.execute(count).fetchone() == (0,)
        app.enqueue_many([("t", {"i": i}) for i in range(300)], connection=conn)
        assert db.execute(count).fetchone() == (0,)  # not before the caller commits
        conn.commit()
    assert db.execute(count).fetchone() == (300,)
