"""A loop that found the database read-only says so once, and the process says when writes
work again: after a success on the loop's current session, one that the server reports
writable. Loops that share a connection (``--connections minimal``) also read, and a read
succeeds on a read-only session; one of them may also finish on a session another loop has
already discarded. Neither ends the outage."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from stem_pg.db.managed import CONNECTION_ERRORS, ManagedConnection, ReadOnlyNotice

REFUSED = psycopg.errors.ReadOnlySqlTransaction("cannot execute UPDATE in a read-only transaction")


def _said(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def _managed(url: str) -> ManagedConnection:
    managed = ManagedConnection(url, "worker", shared=True)
    managed.notice = ReadOnlyNotice()
    return managed


async def test_a_read_on_a_read_only_session_does_not_end_the_outage(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stem_pg.db.managed")
    managed = _managed(make_conninfo(database_url, options="-c default_transaction_read_only=on"))
    try:
        await managed.lost(REFUSED)  # a write was refused
        conn = await managed.get()  # a new session: read-only still
        await conn.execute("SELECT 1")  # another loop's read works on it
        managed.settled(conn)
        assert _said(caplog, "database accepts writes again") == 0

        managed.url = database_url  # the database takes writes again: a new session can write
        await managed.lost(REFUSED, conn)
        conn = await managed.get()
        await conn.execute("SELECT 1")
        managed.settled(conn)
        assert _said(caplog, "database is read-only") == 1
        assert _said(caplog, "database accepts writes again") == 1
    finally:
        await managed.discard()


async def test_a_success_on_a_discarded_session_does_not_end_the_outage(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stem_pg.db.managed")
    managed = _managed(database_url)
    try:
        old = await managed.get()
        await managed.lost(REFUSED, old)  # one loop's write was refused: the session is closed
        managed.settled(old)  # another loop's statement on that session had finished first
        assert _said(caplog, "database accepts writes again") == 0
        conn = await managed.get()
        managed.settled(conn)
        assert _said(caplog, "database accepts writes again") == 1
    finally:
        await managed.discard()


async def test_writes_again_is_said_after_a_read_only_loop_also_lost_its_session(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stem_pg.db.managed")
    managed = _managed(database_url)
    try:
        await managed.lost(REFUSED)
        # The session is then terminated (a failover tool, an operator) before any write worked.
        await managed.lost(psycopg.OperationalError("terminating connection due to administrator command"))
        conn = await managed.get()
        managed.settled(conn)  # the next write succeeds
        assert _said(caplog, "database is read-only") == 1
        assert _said(caplog, "database accepts writes again") == 1
    finally:
        await managed.discard()


async def test_loops_sharing_a_connection_wait_for_one_reconnect_attempt_together(
    unused_tcp_port: int,
) -> None:
    """Five loops share a connection to a server that is down: each round of the backoff
    makes one connection attempt between them, not one each (the attempts a loop makes on
    its own connection in ``per-loop`` mode)."""
    managed = ManagedConnection(
        f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/none", "worker", shared=True
    )
    tried = 0
    real_open = managed._open

    async def counted_open() -> None:
        nonlocal tried
        tried += 1
        await real_open()

    managed._open = counted_open  # type: ignore[method-assign]

    async def loop() -> None:
        while True:
            try:
                await managed.get()
            except CONNECTION_ERRORS as exc:
                await managed.lost(exc)

    loops = [asyncio.create_task(loop()) for _ in range(5)]
    await asyncio.sleep(2.0)
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    assert tried == managed.outage.attempts
    # The backoff's delays (jittered, doubling to a cap) allow about 5 rounds in two seconds;
    # each loop making its own attempt made 10-12.
    assert 2 <= tried <= 7, tried
