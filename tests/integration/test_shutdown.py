"""What a stopping worker writes last: ``job_give_back`` puts back every job it holds in one
statement, and the final flush waits for the write under way instead of racing it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.db.managed import ManagedConnection
from stem_pg.db.stores.broadcasts import BroadcastStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import ClaimedJob, Finish, GivenBack, RetryLater
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight
from stem_pg.worker.flush import OutcomeFlusher
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.shutdown import Shutdown
from stem_pg.worker.slots import Slots
from stem_pg.worker.state import WorkerState

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]
STOPPED = "worker w1 stopped while the task was running"


async def claim(store: JobStore, conn: AsyncConn, token: str, limit: int = 10) -> list[ClaimedJob]:
    return await store.claim(
        conn, queue="default", limit=limit, worker_id="w1", token=token, lease_seconds=60
    )


async def rows(conn: AsyncConn, namespace: str) -> dict[str, tuple[Any, ...]]:
    statement = sql.SQL(
        "SELECT id, state, attempts, worker_id, lease_token, lease_expires_at, started_at IS NOT NULL,"
        " not_before <= now(), errors FROM {}.jobs"
    ).format(sql.Identifier(namespace))
    return {row[0]: row[1:] for row in await (await conn.execute(statement)).fetchall()}


async def test_give_back_retries_interrupted_jobs_and_releases_unstarted_ones_in_one_statement(
    app: Stem, database_url: str
) -> None:
    for task_id in ("again-started", "again-unstarted"):
        app.enqueue("t", task_id=task_id)
    store = JobStore(app.queries, result_ttl=60)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # Two jobs had an attempt before: claimed and retried at once.
        first = str(uuid.uuid4())
        earlier = await claim(store, conn, first)
        await store.retry(conn, outcomes=[RetryLater(j.id, first, 0.0, "boom") for j in earlier])
        for task_id in ("started", "unstarted", "not-ours"):
            app.enqueue("t", task_id=task_id)
        token = str(uuid.uuid4())
        held = {j.id: j for j in await claim(store, conn, token)}
        assert len(held) == 5

        given = await store.give_back(
            conn,
            ids=["started", "unstarted", "again-started", "again-unstarted", "not-ours"],
            tokens=[token, token, token, token, str(uuid.uuid4())],  # a lease it lost
            started=[True, False, True, False, True],
            error=STOPPED,
        )

        assert given == GivenBack(retried=2, released=2)
        after = await rows(conn, app.namespace)
        # Interrupted: retried at once, the attempt counted and recorded; no lease.
        state, attempts, worker, lease, expires, started_at, due, errors = after["started"]
        assert (state, attempts, worker, lease, expires, started_at, due) == (
            "retried", 1, None, None, None, True, True,
        )  # fmt: skip
        assert [(e["attempt"], e["error"]) for e in errors] == [(1, STOPPED)]
        state, attempts, *_, errors = after["again-started"]
        assert (state, attempts) == ("retried", 2)
        assert [(e["attempt"], e["error"]) for e in errors] == [(1, "boom"), (2, STOPPED)]
        # Never started: as before the claim, the attempt not counted, nothing recorded.
        assert after["unstarted"][:7] == ("queued", 0, None, None, None, False, True)
        assert after["unstarted"][7] == []
        assert after["again-unstarted"][:6] == ("retried", 1, None, None, None, False)
        assert [e["error"] for e in after["again-unstarted"][7]] == ["boom"]
        # A token that no longer matches: left alone.
        assert after["not-ours"][:4] == ("running", 1, "w1", uuid.UUID(token))

        # Nothing left to give back: the statement is a no-op.
        again = await store.give_back(conn, ids=["started"], tokens=[token], started=[True], error=STOPPED)
        assert again == GivenBack(0, 0)


async def test_final_flush_waits_for_the_write_under_way(app: Stem, database_url: str) -> None:
    """The flush loop's write is held up by a lock when the worker stops: the final flush
    waits for it to commit instead of returning (and the loop being cancelled mid-write)."""
    app.enqueue("t", task_id="slow")
    store = JobStore(app.queries, result_ttl=60)
    token = str(uuid.uuid4())
    lock = sql.SQL("SELECT 1 FROM {}.jobs WHERE id = 'slow' FOR UPDATE").format(sql.Identifier(app.namespace))
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        await psycopg.AsyncConnection.connect(database_url) as locker,
    ):
        (job,) = await claim(store, conn, token)
        acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
        flusher = OutcomeFlusher(store, acks, ManagedConnection(database_url, "test-flush"), worker_id="w1")
        loop = asyncio.create_task(flusher.loop())
        await locker.execute(lock)
        flusher.add(Inflight(job, token, 60.0), Finish(job.id, token, "succeeded", result="1"))
        await asyncio.sleep(0.3)  # the loop took the outcome; its write waits for the lock
        assert not flusher.pending

        final = asyncio.create_task(flusher.final(forced=True))
        await asyncio.sleep(0.5)
        assert not final.done(), "the final flush returned while a write was under way"
        await locker.commit()
        await asyncio.wait_for(final, 10)
        await asyncio.wait_for(loop, 5)  # the loop ends by itself once the final flush ran

        assert flusher.unflushed == {}
        states = sql.SQL("SELECT id, state FROM {}.results").format(sql.Identifier(app.namespace))
        assert await (await conn.execute(states)).fetchall() == [("slow", "succeeded")]
        await flusher.managed.discard()


async def test_a_loop_that_swallows_its_cancel_holds_up_the_way_out_for_a_bound_only(
    app: Stem, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop loses the cancel of the shutdown (as Python 3.11's ``wait_for`` could drop one):
    the way out waits ``loops_wait`` for it, names it in one log line, and goes on to give back
    the jobs the worker held."""
    app.enqueue("t", task_id="held")
    store = JobStore(app.queries, result_ttl=60)
    state = WorkerState(WorkerSettings(queues=("default",), worker_id="w1"))
    managed = ManagedConnection(database_url, "test-shutdown")
    acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
    flusher = OutcomeFlusher(store, acks, managed, worker_id="w1")
    slots = Slots(1)
    slots.start()
    workers = WorkerStore(app.queries)
    never = lambda: False  # noqa: E731
    shutdown = Shutdown(store, workers, state, slots, flusher, managed, grace=lambda: 0.0, forced=never)
    shutdown.loops_wait = 0.5
    token = str(uuid.uuid4())
    (job,) = await claim(store, await managed.get(), token)
    state.inflight[job.id] = Inflight(job, token, 60.0)  # leased, never started
    state.stopping = True

    swallowed, release = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # the cancel is lost: the loop goes on waiting
        await release.wait()

    loop = asyncio.create_task(stubborn(), name="control")
    claimer = asyncio.create_task(asyncio.sleep(0), name="claimer")
    await asyncio.sleep(0)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="stem_pg.worker.shutdown"):
        await asyncio.wait_for(shutdown.run(claimer, [loop]), 10)
    took = time.monotonic() - began
    try:
        assert swallowed.is_set() and not loop.done()
        assert shutdown.stuck == ["control"]
        assert 0.5 <= took < 5, took
        lines = [r.getMessage() for r in caplog.records if "after being cancelled" in r.getMessage()]
        assert lines == ["worker w1: control still running 0.5 s after being cancelled; going on without it"]
        # ... and the way out went on: the held job is queued again.
        assert (await rows(await managed.get(), app.namespace))["held"][:4] == ("queued", 0, None, None)
    finally:
        release.set()
        await loop
        await managed.discard()
