"""A loop that found the database read-only says so once, and the process says when writes
work again, even if the loop lost its connection some other way in between."""

from __future__ import annotations

import logging

import psycopg
import pytest

from stem_pg.db.managed import ManagedConnection, ReadOnlyNotice


async def test_writes_again_is_said_after_a_read_only_loop_also_lost_its_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    managed = ManagedConnection("postgresql://nowhere.invalid/db", "worker-maintenance")
    managed.notice = ReadOnlyNotice()
    caplog.set_level(logging.INFO, logger="stem_pg.db.managed")

    await managed.lost(
        psycopg.errors.ReadOnlySqlTransaction("cannot execute SELECT in a read-only transaction")
    )
    # The session is then terminated (a failover tool, an operator) before any write worked.
    await managed.lost(psycopg.OperationalError("terminating connection due to administrator command"))
    managed.settled()  # the next write succeeds

    messages = [record.getMessage() for record in caplog.records]
    assert sum("database is read-only" in m for m in messages) == 1, messages
    assert any("database accepts writes again" in m for m in messages), messages
