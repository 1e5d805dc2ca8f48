"""Rescuer, expiry and pruning, driven by run_once on stale rows we build (no sleeping)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg import sql

from stem_pg.app import Stem
from stem_pg.store.jobs import JobStore
from stem_pg.store.rows import Finish
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.settings import WorkerSettings


def _q(text: str, ns: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(ns))  # type: ignore[arg-type]


async def _claim(app: Stem, store: JobStore, conn: psycopg.AsyncConnection, limit: int = 10) -> str:  # type: ignore[type-arg]
    token = str(uuid.uuid4())
    jobs = await store.claim(
        conn, queue="default", limit=limit, worker_id="w1", token=token, lease_seconds=30
    )
    assert jobs
    return token


async def test_expired_leases_are_requeued_or_failed(app: Stem, database_url: str) -> None:
    @app.task(name="at_most_once", acks_late=False)
    def once() -> None: ...

    app.enqueue("plain", {}, task_id="requeue-me")
    app.enqueue("at_most_once", {}, task_id="fail-me")
    app.enqueue("plain", {}, task_id="exhausted")
    store = JobStore(app.queries, result_ttl=60)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(_q("UPDATE {ns}.jobs SET max_retries = 0 WHERE id = 'exhausted'", app.namespace))
        token = await _claim(app, store, conn)
        await conn.execute(
            _q("UPDATE {ns}.jobs SET lease_expires_at = now() - interval '1 second'", app.namespace)
        )
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(app.queries.channels.done)))
        woken: list[bool] = []
        report = await Maintenance(
            store, WorkerSettings(queues=("default",)), on_requeued=lambda: woken.append(True)
        ).run_once(conn)
        assert (report.requeued, report.lease_failed) == (1, 2)
        assert woken == [True]
        note = await anext(conn.notifies(timeout=2))
        assert set(note.payload.split(",")) == {"fail-me", "exhausted"}
        cur = await conn.execute(
            _q("SELECT id, state, attempts FROM {ns}.task_states ORDER BY id", app.namespace)
        )
        assert await cur.fetchall() == [
            ("exhausted", "failed", 1),
            ("fail-me", "failed", 1),
            ("requeue-me", "retried", 1),
        ]
        cur = await conn.execute(
            _q("SELECT task_id, reason FROM {ns}.dead_letters ORDER BY task_id", app.namespace)
        )
        assert await cur.fetchall() == [("exhausted", "lease_expired"), ("fail-me", "lease_expired")]
        # The old lease holder can no longer finish the rescued job.
        finished = await store.finish(conn, outcomes=[Finish("requeue-me", token, "succeeded", result="1")])
        assert finished == 0


async def test_expired_jobs_are_cancelled_and_results_pruned(app: Stem, database_url: str) -> None:
    app.enqueue("t", {}, task_id="stale", expires=0.01)
    await asyncio.sleep(0.05)
    store = JobStore(app.queries, result_ttl=0)
    ticks = iter([0.0, 10.0, 1000.0])
    maintenance = Maintenance(
        store, WorkerSettings(queues=("default",), prune_interval=100), clock=lambda: next(ticks)
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        first = await maintenance.run_once(conn)
        assert first.cancelled == 1
        cur = await conn.execute(_q("SELECT state FROM {ns}.results WHERE id = 'stale'", app.namespace))
        assert await cur.fetchone() == ("cancelled",)
        assert first.pruned == 0  # the prune interval had not passed yet
        await asyncio.sleep(0.01)
        assert (await maintenance.run_once(conn)).pruned == 1


@pytest.mark.parametrize("vt", [1])
async def test_short_visibility_timeout_is_heartbeated(app: Stem, vt: int) -> None:
    from tests.helpers import running_worker

    @app.task(name="slowish", visibility_timeout=vt)
    async def slowish() -> str:
        await asyncio.sleep(2.5)
        return "done"

    with running_worker(app, maintenance_interval=0.3):
        handle = await app.aenqueue("slowish")
        assert await handle.wait(timeout=15) == "done"
        status = handle.status()
        assert status is not None and status.attempts == 1
    await app.aclose()
