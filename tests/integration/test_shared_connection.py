"""A connection several loops share (``--connections minimal``, stem_pg.db.shared): another
task's statement waits for a transaction under way instead of landing inside it, where it
would commit or roll back with someone else's work."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from stem_pg.db.connect import connect_async


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
