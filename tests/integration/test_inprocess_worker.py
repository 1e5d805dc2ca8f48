"""``async with app.worker(...)``: the real worker engine inside the caller's event loop (an
ASGI lifespan), and transactional enqueue on SQLAlchemy async sessions.

A FastAPI app whose request enqueues a job and answers with the result its in-process
worker wrote; a worker leaving its block gives back what it did not finish; a session
rolled back leaves no job, a committed one does.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from stem_pg.client.app import Stem
from stem_pg.core.errors import ConfigError, NotMigratedError, TaskError
from stem_pg.worker.inprocess import InProcessWorker


def _jobs(db: psycopg.Connection[Any], namespace: str) -> dict[str, tuple[str, int]]:
    found = db.execute(f'SELECT id, state, attempts FROM "{namespace}".task_states').fetchall()
    return {row[0]: (row[1], row[2]) for row in found}


def _web_app(stem: Stem) -> FastAPI:
    @stem.task(name="add")
    async def add(x: int, y: int) -> dict[str, int]:
        return {"sum": x + y, "pid": os.getpid()}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with stem.worker(queues=["default"], concurrency=2, poll_interval=0.2):
            yield

    api = FastAPI(lifespan=lifespan)

    @api.post("/add")
    async def enqueue_and_wait(x: int, y: int) -> dict[str, Any]:
        job = await stem.aenqueue("add", {"x": x, "y": y})
        return {"id": job.id, **await job.wait(timeout=15)}

    return api


async def test_a_fastapi_request_gets_the_result_of_a_job_its_in_process_worker_ran(
    app: Stem, db: psycopg.Connection[Any]
) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    api = _web_app(app)
    async with (
        api.router.lifespan_context(api),  # what an ASGI server runs around serving
        AsyncClient(transport=ASGITransport(api), base_url="http://test") as client,
    ):
        calls = [client.post("/add", params={"x": n, "y": 10}) for n in range(3)]
        answers = [response.json() for response in await asyncio.gather(*calls)]
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert [a["sum"] for a in answers] == [10, 11, 12]
    assert {a["pid"] for a in answers} == {os.getpid()}  # run here, not in a worker process
    assert {_jobs(db, app.namespace)[a["id"]][0] for a in answers} == {"succeeded"}
    stopped = db.execute(f'SELECT stopped_at IS NOT NULL FROM "{app.namespace}".workers').fetchall()
    assert stopped == [(True,)]  # it left the way a stopping worker process does


async def test_leaving_the_block_gives_back_the_job_still_running(
    app: Stem, db: psycopg.Connection[Any]
) -> None:
    started = asyncio.Event()

    @app.task(name="slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    await app.aenqueue("slow", task_id="long")
    async with app.worker(concurrency=1, poll_interval=0.2, shutdown_grace=0.2) as worker:
        assert isinstance(worker, InProcessWorker) and worker.running
        await asyncio.wait_for(started.wait(), 15)
        assert _jobs(db, app.namespace)["long"] == ("running", 1)
    assert not worker.running
    assert _jobs(db, app.namespace)["long"] == ("retried", 1)  # for another worker, at once


async def test_a_namespace_not_migrated_fails_at_once(database_url: str, fresh_namespace: str) -> None:
    stem = Stem(database_url, namespace=fresh_namespace)
    with pytest.raises(NotMigratedError):
        async with stem.worker():
            pass


def test_bad_worker_options_are_refused_before_anything_runs(app: Stem) -> None:
    with pytest.raises(ConfigError, match="max_tasks_per_child needs a worker process"):
        app.worker(max_tasks_per_child=10)
    with pytest.raises(ConfigError, match="unknown option 'concurency'"):
        app.worker(concurency=3)
    with pytest.raises(ConfigError, match="--concurrency must be at least 1"):
        app.worker(concurrency=0)


def _async_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+psycopg://", 1)


async def test_aenqueue_joins_a_sqlalchemy_async_session(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    engine = create_async_engine(_async_url(database_url))
    try:
        async with AsyncSession(engine) as session:
            await app.aenqueue("t", {"n": 1}, task_id="rolled-back", connection=session)
            await session.rollback()
        async with AsyncSession(engine) as session, session.begin():
            await app.aenqueue("t", {"n": 2}, task_id="committed", connection=session)
            assert "committed" not in _jobs(db, app.namespace)  # not before the commit
        async with engine.begin() as connection:
            await app.aenqueue_many([("t", {"n": 3})], connection=connection)
    finally:
        await engine.dispose()
    jobs = _jobs(db, app.namespace)
    assert "rolled-back" not in jobs and "committed" in jobs and len(jobs) == 2


async def test_a_session_on_another_driver_is_one_clear_error(app: Stem) -> None:
    with pytest.raises(TaskError, match="AsyncSession/AsyncConnection, got str"):
        await app.aenqueue("t", {}, connection="postgresql://nowhere")
