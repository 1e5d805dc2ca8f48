"""The one LISTEN-and-wait loop (stem_pg.db.listen) on a real Postgres, sync and async."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from stem_pg.db.listen import await_until, wait_until

Db = psycopg.Connection[tuple[Any, ...]]


def _channel() -> str:
    return f"listen-{uuid.uuid4().hex[:8]}"


def _listening(conn: Any) -> list[tuple[Any, ...]]:
    return list(conn.execute("SELECT pg_listening_channels()").fetchall())


def _notify_later(url: str, channel: str, payloads: list[str], delay: float = 0.2) -> threading.Thread:
    def send() -> None:
        time.sleep(delay)
        with psycopg.connect(url, autocommit=True) as conn:
            for payload in payloads:
                conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_an_answer_that_is_there_returns_at_once_and_unlistens(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = wait_until(conn, channel=_channel(), key="k", check=lambda: 42, timeout=0, late="late")
        assert found == 42
        assert _listening(conn) == []


def test_a_mention_of_the_key_wakes_the_waiter_and_others_do_not(database_url: str) -> None:
    channel = _channel()
    calls: list[float] = []

    def check() -> str | None:
        calls.append(time.monotonic())
        return "done" if len(calls) > 1 else None

    with psycopg.connect(database_url, autocommit=True) as conn:
        sender = _notify_later(database_url, channel, ["other", "a,k,b"])
        start = time.monotonic()
        assert wait_until(conn, channel=channel, key="k", check=check, timeout=10, late="late") == "done"
        sender.join()
        assert len(calls) == 2, "the notification for 'other' does not re-read"
        assert time.monotonic() - start < 5
        assert _listening(conn) == []


def test_no_answer_by_the_deadline_raises_timeout_with_the_message(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        calls: list[None] = []

        def never() -> None:
            calls.append(None)

        with pytest.raises(TimeoutError, match="k did not come"):
            wait_until(
                conn,
                channel=_channel(),
                key="k",
                check=never,
                timeout=0.3,
                late="k did not come",
                recheck=0.1,
            )
        assert len(calls) >= 3, "recheck re-reads without a notification"
        assert _listening(conn) == []


async def test_the_async_twin_waits_the_same_way(database_url: str) -> None:
    channel = _channel()
    calls: list[None] = []

    async def check() -> str | None:
        calls.append(None)
        return "done" if len(calls) > 1 else None

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        sender = _notify_later(database_url, channel, ["*"])
        found = await await_until(conn, channel=channel, key="k", check=check, timeout=10, late="late")
        sender.join()
        assert found == "done"
        with pytest.raises(TimeoutError, match="late"):
            await await_until(conn, channel=channel, key="k", check=lambda: _none(), timeout=0.1, late="late")
        cur = await conn.execute("SELECT pg_listening_channels()")
        assert await cur.fetchall() == []


async def _none() -> None:
    return None
