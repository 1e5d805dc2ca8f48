"""Unique tasks: a duplicate enqueue while the first job is live returns the first job's id."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.envelope import unique_key
from stem_pg.core.errors import TaskError
from tests.helpers import running_worker, wait_for

Db = psycopg.Connection[tuple[Any, ...]]


def jobs(db: Db, ns: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT id, task, unique_key, args FROM {}.jobs ORDER BY seq").format(sql.Identifier(ns))
    return db.execute(query).fetchall()


def register(app: Stem, **options: Any) -> None:
    @app.task(name="u.report", **options)
    def report(day: str, region: str = "eu") -> str:
        return f"{day}/{region}"


def test_duplicate_returns_the_live_job(app: Stem, db: Db) -> None:
    register(app, unique=True)
    first = app.enqueue("u.report", {"day": "mon", "region": "eu"})
    again = app.enqueue("u.report", {"region": "eu", "day": "mon"})  # same arguments, other order
    other = app.enqueue("u.report", {"day": "tue"})
    elsewhere = app.enqueue("u.report", {"day": "mon", "region": "eu"}, queue="other")
    assert again.id == first.id
    assert len({first.id, other.id, elsewhere.id}) == 3
    rows = jobs(db, app.namespace)
    assert len(rows) == 3
    assert rows[0][2] == unique_key("u.report", "default", {"day": "mon", "region": "eu"})
    assert len(rows[0][2]) == 64


def test_non_unique_tasks_are_not_deduplicated(app: Stem, db: Db) -> None:
    register(app)
    a = app.enqueue("u.report", {"day": "mon"})
    b = app.enqueue("u.report", {"day": "mon"})
    assert a.id != b.id
    assert [r[2] for r in jobs(db, app.namespace)] == [None, None]


def test_after_the_job_finishes_a_new_enqueue_makes_a_new_job(app: Stem) -> None:
    register(app, unique=True)
    first = app.enqueue("u.report", {"day": "mon"})
    with running_worker(app):
        assert first.get(timeout=15) == "mon/eu"
        second = app.enqueue("u.report", {"day": "mon"})
        assert second.id != first.id
        assert second.get(timeout=15) == "mon/eu"


def test_unique_for_bounds_how_long_a_key_blocks(app: Stem, db: Db) -> None:
    register(app, unique_for=0.5)
    first = app.enqueue("u.report", {"day": "mon"})
    assert app.enqueue("u.report", {"day": "mon"}).id == first.id
    time.sleep(0.7)
    second = app.enqueue("u.report", {"day": "mon"})
    assert second.id != first.id
    keys = {row[0]: row[2] for row in jobs(db, app.namespace)}
    assert keys[first.id] is None, "the expired holder gave its key up"
    assert keys[second.id] is not None


def test_enqueue_many_with_duplicates_in_one_batch(app: Stem, db: Db) -> None:
    register(app, unique=True)
    results = app.enqueue_many(
        [("u.report", {"day": "mon"}), ("u.report", {"day": "mon"}), ("u.report", {"day": "tue"})]
        + [EnqueueRequest("plain", {"n": i}) for i in range(300)]  # the COPY path still works
    )
    assert results[0].id == results[1].id != results[2].id
    assert len(jobs(db, app.namespace)) == 302


def test_transactional_enqueue_of_a_unique_task(app: Stem, database_url: str, db: Db) -> None:
    register(app, unique=True)
    with psycopg.connect(database_url) as conn:
        first = app.enqueue("u.report", {"day": "mon"}, connection=conn)
        assert app.enqueue("u.report", {"day": "mon"}, connection=conn).id == first.id
        conn.rollback()
    assert jobs(db, app.namespace) == []
    assert app.enqueue("u.report", {"day": "mon"}).id != first.id


async def test_async_enqueue_of_a_unique_task(app: Stem, db: Db) -> None:
    register(app, unique=True)
    try:
        first = await app.aenqueue("u.report", {"day": "mon"})
        again = await app.aenqueue("u.report", {"day": "mon"})
        assert again.id == first.id
    finally:
        await app.aclose()


def test_a_unique_task_through_a_sqlalchemy_session(app: Stem, database_url: str, db: Db) -> None:
    """The unique-key steps read their rows through SQLAlchemy as well (the holder's id comes back)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    register(app, unique=True)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session, session.begin():
            first = app.enqueue("u.report", {"day": "mon"}, connection=session)
            again = app.enqueue("u.report", {"day": "mon"}, connection=session)
    finally:
        engine.dispose()
    assert again.id == first.id
    assert [row[0] for row in jobs(db, app.namespace)] == [first.id]


def test_bad_unique_options_are_refused(app: Stem) -> None:
    with pytest.raises(TaskError, match="unique_for must be a positive number of seconds"):
        register(app, unique_for=0)


def test_two_threads_enqueueing_at_once_give_one_job(app: Stem, db: Db) -> None:
    register(app, unique=True)
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def enqueue() -> None:
        barrier.wait()
        ids.append(app.enqueue("u.report", {"day": "race"}).id)

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert len(jobs(db, app.namespace)) == 1


def _enqueue_in_a_process(url: str, namespace: str, start: Any, out: Any) -> None:
    stem = Stem(url, namespace=namespace, config=StemConfig())
    register(stem, unique=True)
    start.wait()
    out.put(stem.enqueue("u.report", {"day": "proc"}).id)
    stem.close()


def test_two_processes_enqueueing_at_once_give_one_job(database_url: str, app: Stem, db: Db) -> None:
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    procs = [
        context.Process(target=_enqueue_in_a_process, args=(database_url, app.namespace, start, out))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.5)  # let both import and connect
    start.set()
    ids = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert ids[0] == ids[1]
    wait_for(lambda: len(jobs(db, app.namespace)) == 1)
