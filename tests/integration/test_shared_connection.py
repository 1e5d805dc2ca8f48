"""A connection several loops share (``--connections minimal``, stem_pg.db.shared): another
task's statement waits for a transaction under way instead of landing inside it, where it
would commit or roll back with someone else's work; and the claim's plan stays the claim's."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from stem_pg.db.connect import connect_async
from stem_pg.db.stores.jobs import JobStore
from stem_pg.worker.connections import WorkerConnections


class Rollback(Exception):
    pass


@pytest.mark.parametrize("shared", [True, False])
async def test_a_statement_waits_for_another_tasks_transaction(database_url: str, shared: bool) -> None:
    conn = await connect_async(database_url, role="test-shared", shared=shared)
    try:
        await conn.execute("CREATE TEMP TABLE seen (who text)")
        in_transaction = asyncio.Event()

        async def flusher() -> None:
            with pytest.raises(Rollback):
                async with conn.transaction():
                    await conn.execute("INSERT INTO seen VALUES ('flusher')")
                    in_transaction.set()
                    await asyncio.sleep(0.3)  # its next statement's round trip, say
                    raise Rollback

        async def heartbeat() -> None:
            await in_transaction.wait()
            await conn.execute("INSERT INTO seen VALUES ('heartbeat')")

        await asyncio.gather(flusher(), heartbeat())
        rows = await (await conn.execute("SELECT who FROM seen")).fetchall()
        if shared:
            assert rows == [("heartbeat",)]  # its own commit, whatever became of the other
        else:
            assert rows == []  # a plain connection: it rolled back inside the other's transaction
    finally:
        await conn.close()


async def test_statements_inside_ones_own_transaction_pass(database_url: str) -> None:
    conn = await connect_async(database_url, role="test-shared", shared=True)
    try:
        async with conn.transaction(), conn.transaction():  # a savepoint, same task
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
        assert isinstance(conn, psycopg.AsyncConnection)
    finally:
        await conn.close()


async def _nothing(_conn: object) -> None:
    return None


@pytest.mark.parametrize("mode", ["minimal", "per-loop"])
async def test_only_a_claim_connection_of_its_own_plans_with_sorts_off(
    database_url: str, app: Stem, mode: str
) -> None:
    """The claim plan (sorts off) must not reach the other loops' statements on the shared
    connection: a sort no plan avoids then costs so much that the statement is JIT-compiled
    (about a second of the server's CPU for each vacuum_horizon of the maintenance pass)."""
    jobs = JobStore(app.queries, result_ttl=60)
    conns = WorkerConnections(
        database_url, plan_claims=jobs.plan_claims, listen_connected=_nothing, on_lost=lambda: None, mode=mode
    )
    try:
        conn = await conns.claim.get()
        ids = [f"job-{i}" for i in range(3)]
        app.enqueue_many(EnqueueRequest("t", task_id=task_id) for task_id in ids)
        claimed = await jobs.claim(
            conn, queue="default", limit=10, worker_id="w1", token=str(uuid.uuid4()), lease_seconds=60
        )
        assert [job.id for job in claimed] == ids  # in the claim index's order
        sort = await (await conn.execute("SHOW enable_sort")).fetchone()
        assert sort == (("on",) if mode == "minimal" else ("off",))
        assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)  # no transaction left open
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        await conns.discard()
