"""``db.listen.notifications``: an idle listener proves the server still answers, and one
whose server stopped answering (its backend frozen by SIGSTOP, in a private cluster) is
cut within about ``idle + ping_timeout`` seconds instead of waiting for ever."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import psycopg
import pytest

from stem_pg.db.listen import notifications
from tests.cluster import PrivateCluster, private_cluster

__all__ = ["private_cluster"]  # the fixture, imported for the test below


async def test_a_listener_whose_backend_froze_is_cut_within_seconds(private_cluster: PrivateCluster) -> None:
    conn = await psycopg.AsyncConnection.connect(private_cluster.url, autocommit=True)
    await conn.execute("LISTEN frozen")
    pid = conn.info.backend_pid
    os.kill(pid, signal.SIGSTOP)  # a backend of our private cluster only
    try:
        start = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match=r"did not answer within 0\.5 s"):
            async with asyncio.timeout(20):
                async for _note in notifications(conn, idle=0.5, ping_timeout=0.5):
                    pass
        took = time.monotonic() - start
    finally:
        os.kill(pid, signal.SIGCONT)
    await conn.close()
    assert took < 3, f"the frozen listener was noticed after {took:.1f} s"


async def test_an_idle_listener_that_answers_keeps_listening(database_url: str) -> None:
    channel = f"ping-{os.getpid()}-{time.monotonic_ns()}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        pings: list[str] = []

        async def notify_later() -> None:
            await asyncio.sleep(1.0)  # several idle round trips of 0.2 s first
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
                await other.execute("SELECT pg_notify(%s, 'hello')", (channel,))

        sender = asyncio.create_task(notify_later())
        async with asyncio.timeout(20):
            async for note in notifications(conn, idle=0.2, ping_timeout=5):
                pings.append(note.payload)
                break
        await sender
        assert pings == ["hello"]
