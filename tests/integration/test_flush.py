"""The worker's outcome flush against real lock conflicts."""

from __future__ import annotations

import asyncio
import logging
import uuid

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.db.managed import ManagedConnection
from stem_pg.db.stores.broadcasts import BroadcastStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import Finish
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight
from stem_pg.worker.flush import OutcomeFlusher


async def test_a_flush_that_loses_a_deadlock_keeps_its_outcomes_and_writes_them_next_time(
    app: Stem, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Postgres aborts one side of a deadlock: when it is the flush, nothing is lost; the
    outcomes stay buffered and the next flush writes them."""
    app.enqueue("t", task_id="job-a")
    app.enqueue("t", task_id="job-b")
    store = JobStore(app.queries, result_ttl=60)
    token = str(uuid.uuid4())
    lock_one = sql.SQL("SELECT 1 FROM {}.jobs WHERE id = %s FOR UPDATE").format(sql.Identifier(app.namespace))
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        await psycopg.AsyncConnection.connect(database_url) as other,
    ):
        claimed = await store.claim(
            conn, queue="default", limit=10, worker_id="w1", token=token, lease_seconds=60
        )
        acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
        flusher = OutcomeFlusher(store, acks, ManagedConnection(database_url, "test-flush"), worker_id="w1")
        for job in claimed:
            flusher.add(Inflight(job, token, 60.0), Finish(job.id, token, "succeeded", result="1"))

        connection = await flusher.managed.get()
        await other.execute(lock_one, ("job-b",))  # the other transaction holds b ...
        flush = asyncio.create_task(flusher.flush_once())  # ... the flush locks a, waits for b
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.INFO, logger="stem_pg.worker.flush"):
            await other.execute(lock_one, ("job-a",))  # ... and now the other waits for a
            await flush  # the flush waited first: its deadlock check fires first and aborts it
        await other.commit()
        assert "flush retried after DeadlockDetected" in caplog.text
        assert await flusher.managed.get() is connection  # a deadlock is no reason to reconnect
        assert sorted(o.id for o in flusher.outcomes) == ["job-a", "job-b"]  # kept, not dropped

        await flusher.flush_once()
        assert flusher.outcomes == [] and flusher.unflushed == {}
        states = sql.SQL("SELECT id, state FROM {}.results ORDER BY id").format(sql.Identifier(app.namespace))
        rows = await (await conn.execute(states)).fetchall()
        assert rows == [("job-a", "succeeded"), ("job-b", "succeeded")]
        await flusher.managed.discard()


async def test_the_final_flush_waits_for_a_flush_under_way(app: Stem, database_url: str) -> None:
    """A worker stopping calls ``final`` while its flush loop may be writing a batch that
    has already left the buffer: ``final`` must wait for that write, or the worker cancels
    it on its way out and the outcomes are lost (their jobs ran again after their lease)."""
    app.enqueue("t", task_id="job-a")
    store = JobStore(app.queries, result_ttl=60)
    token = str(uuid.uuid4())
    lock_one = sql.SQL("SELECT 1 FROM {}.jobs WHERE id = %s FOR UPDATE").format(sql.Identifier(app.namespace))
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        await psycopg.AsyncConnection.connect(database_url) as other,
    ):
        (job,) = await store.claim(
            conn, queue="default", limit=1, worker_id="w1", token=token, lease_seconds=60
        )
        acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
        flusher = OutcomeFlusher(store, acks, ManagedConnection(database_url, "test-flush"), worker_id="w1")
        flusher.add(Inflight(job, token, 60.0), Finish(job.id, token, "succeeded", result="1"))
        await flusher.managed.get()
        await other.execute(lock_one, ("job-a",))
        loop = asyncio.create_task(flusher.loop())  # takes the batch, then waits for the row lock
        await asyncio.sleep(0.3)
        final = asyncio.create_task(flusher.final(forced=False))
        await asyncio.sleep(0.3)
        assert not final.done(), "final returned while the batch was still being written"
        await other.commit()
        await asyncio.wait_for(final, 10)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        states = sql.SQL("SELECT id, state FROM {}.results").format(sql.Identifier(app.namespace))
        assert await (await conn.execute(states)).fetchall() == [("job-a", "succeeded")]
        await flusher.managed.discard()
