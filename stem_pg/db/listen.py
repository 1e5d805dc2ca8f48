"""The one LISTEN-and-wait loop: re-read until something is there, sleeping on NOTIFY in between.

Result handles, broadcast handles and workflow runs all wait the same way:
LISTEN first (so no notification between the read and the wait is lost), read,
and if the answer is not there yet, sleep until a notification mentions the
awaited key (payloads are comma-separated keys, or ``*`` for "too many to
list"), ``recheck`` seconds pass, or the deadline. A notification is a hint to
read again, never the answer itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

T = TypeVar("T")


def wait_until(
    conn: psycopg.Connection[Any],
    *,
    channel: str,
    key: str,
    check: Callable[[], T | None],
    timeout: float | None,
    late: str,
    recheck: float | None = None,
) -> T:
    """Run ``check`` on ``conn`` (a psycopg Connection in autocommit) until it returns a value.

    Raises TimeoutError(``late``) once ``timeout`` seconds passed without one.
    ``conn`` LISTENs on ``channel`` meanwhile and UNLISTENs before it returns.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
    try:
        while True:
            found = check()
            if found is not None:
                return found
            wait_for_mention(conn, key, deadline, late=late, recheck=recheck)
    finally:
        conn.execute(SQL("UNLISTEN {}").format(Identifier(channel)))


async def await_until(
    conn: psycopg.AsyncConnection[Any],
    *,
    channel: str,
    key: str,
    check: Callable[[], Awaitable[T | None]],
    timeout: float | None,
    late: str,
    recheck: float | None = None,
) -> T:
    """The async twin of ``wait_until`` (``conn``: a psycopg AsyncConnection in autocommit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    await conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
    try:
        while True:
            found = await check()
            if found is not None:
                return found
            await await_mention(conn, key, deadline, late=late, recheck=recheck)
    finally:
        await conn.execute(SQL("UNLISTEN {}").format(Identifier(channel)))


def wait_for_mention(
    conn: psycopg.Connection[Any],
    key: str,
    deadline: float | None,
    *,
    late: str,
    recheck: float | None = None,
) -> None:
    """Sleep on the channel ``conn`` LISTENs on until a notification names ``key`` (or says
    ``*``), ``recheck`` seconds pass, or the deadline: then TimeoutError(``late``)."""
    for note in conn.notifies(timeout=_patience(deadline, late, recheck)):
        if mentions(note.payload, key):
            return


async def await_mention(
    conn: psycopg.AsyncConnection[Any],
    key: str,
    deadline: float | None,
    *,
    late: str,
    recheck: float | None = None,
) -> None:
    """The async twin of ``wait_for_mention``."""
    async for note in conn.notifies(timeout=_patience(deadline, late, recheck)):
        if mentions(note.payload, key):
            return


def mentions(payload: str, key: str) -> bool:
    """Whether a notification is about ``key``: it lists it, or says ``*`` (too many to list)."""
    return payload == "*" or key in payload.split(",")


def _patience(deadline: float | None, late: str, recheck: float | None) -> float | None:
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise TimeoutError(late)
    if recheck is None:
        return remaining
    return recheck if remaining is None else min(remaining, recheck)
