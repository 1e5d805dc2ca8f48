"""A finish that arrives after the job's lease went to another worker is skipped by the
database (lease token mismatch), and the flusher says so, by task id: the worker had been
cut off from the database (or frozen) while its handler ran, and the job runs elsewhere.

Before, the skip was silent: the worker counted the job as done and nothing told the
operator its outcome was dropped (tests/acceptance/test_many_hosts.py cuts a host off).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.managed import ManagedConnection
from stem_pg.db.stores.broadcasts import BroadcastStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import Finish
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight
from stem_pg.worker.flush import OutcomeFlusher

JOBS = 6


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        yield connection


async def test_a_finish_whose_lease_went_elsewhere_is_skipped_and_logged(
    app: Stem, database_url: str, conn: psycopg.AsyncConnection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"job-{i}" for i in range(JOBS)]
    app.enqueue_many(EnqueueRequest("t", task_id=task_id) for task_id in ids)
    store = JobStore(app.queries, result_ttl=60)
    token = str(uuid.uuid4())
    claimed = await store.claim(
        conn, queue="default", limit=JOBS, worker_id="w1", token=token, lease_seconds=60
    )
    assert sorted(job.id for job in claimed) == ids
    # What a rescue and another worker's claim do to jobs 1 and 4 while w1 is cut off.
    await conn.execute(
        sql.SQL(
            "UPDATE {}.jobs SET lease_token = gen_random_uuid(), worker_id = 'w2' WHERE id = ANY(%s)"
        ).format(sql.Identifier(app.namespace)),
        (["job-1", "job-4"],),
    )
    acks = BroadcastAcks(BroadcastStore(app.queries), worker_id="w1")
    flusher = OutcomeFlusher(store, acks, ManagedConnection(database_url, "test-flush"), worker_id="w1")
    for job in claimed:
        entry = Inflight(job, token, 60.0)
        entry.lost = job.id == "job-4"  # the heartbeat found this one lost already, and said so
        flusher.add(entry, Finish(job.id, token, "succeeded", result="1"))
    with caplog.at_level(logging.INFO, logger="stem_pg.worker.flush"):
        try:
            await flusher.flush_once()
        finally:
            await flusher.managed.discard()

    cur = await conn.execute(
        sql.SQL("SELECT id FROM {}.results ORDER BY id").format(sql.Identifier(app.namespace))
    )
    assert [row[0] for row in await cur.fetchall()] == ["job-0", "job-2", "job-3", "job-5"]
    cur = await conn.execute(
        sql.SQL("SELECT id, worker_id FROM {}.jobs ORDER BY id").format(sql.Identifier(app.namespace))
    )
    assert await cur.fetchall() == [("job-1", "w2"), ("job-4", "w2")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "worker w1: lost the lease of task job-1 before its outcome was written (another worker may"
        " run it); the outcome is dropped"
    ]
    assert flusher.outcomes == [] and flusher.unflushed == {}
    # The store's own count: a finish of a job it no longer holds finishes nothing.
    assert await store.finish(conn, outcomes=[Finish("job-1", token, "succeeded", result="1")]) == 0
