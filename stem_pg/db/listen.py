"""LISTEN connections: the one LISTEN-and-wait loop, and listeners that notice a frozen server.

Result handles, broadcast handles and workflow runs all wait the same way:
LISTEN first (so no notification between the read and the wait is lost), read,
and if the answer is not there yet, sleep until a notification mentions the
awaited key (payloads are comma-separated keys, or ``*`` for "too many to
list"), ``recheck`` seconds pass, or the deadline. A notification is a hint to
read again, never the answer itself. ``wait_reconnecting`` (and its async twin)
survive a lost connection: they take a new one after a backoff
(``core.backoff``), LISTEN again and re-read, until the caller's deadline.

The worker's and beat's listeners read with ``notifications()``: a connection
that heard nothing for ``LISTEN_IDLE_PING`` seconds makes a round trip, and one
the server does not answer within ``LISTEN_PING_TIMEOUT`` (a silent network
partition, a frozen backend) is cut, so its loop reconnects and LISTENs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

from stem_pg.core.backoff import Outage
from stem_pg.db.managed import CONNECTION_ERRORS, describe

T = TypeVar("T")
C = TypeVar("C", bound="psycopg.Connection[Any]")
A = TypeVar("A", bound="psycopg.AsyncConnection[Any]")

log = logging.getLogger(__name__)

#: A listener that heard nothing this long (seconds) checks that the server still answers.
LISTEN_IDLE_PING = 2.0
#: ... and a server that does not answer that round trip this fast is taken for gone.
LISTEN_PING_TIMEOUT = 2.0
#: The shortest wait for a pool connection, however close the deadline.
MIN_CONNECTION_WAIT = 0.5
_PING = SQL("SELECT 1")


def wait_until(
    conn: psycopg.Connection[Any],
    *,
    channel: str,
    key: str,
    check: Callable[[], T | None],
    timeout: float | None,
    late: str,
    recheck: float | None = None,
    listen: bool = True,
) -> T:
    """Run ``check`` on ``conn`` (a psycopg Connection in autocommit) until it returns a value.

    Raises TimeoutError(``late``) once ``timeout`` seconds passed without one.
    ``conn`` LISTENs on ``channel`` meanwhile and UNLISTENs before it returns (unless not
    ``listen``: a pooled session cannot; then it only re-reads every ``recheck`` seconds).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    if listen:
        conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
    try:
        while True:
            found = check()
            if found is not None:
                return found
            wait_for_mention(conn, key, deadline, late=late, recheck=recheck)
    finally:
        if listen and not conn.broken and not conn.closed:
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
    listen: bool = True,
) -> T:
    """The async twin of ``wait_until`` (``conn``: a psycopg AsyncConnection in autocommit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if listen:
        await conn.execute(SQL("LISTEN {}").format(Identifier(channel)))
    try:
        while True:
            found = await check()
            if found is not None:
                return found
            await await_mention(conn, key, deadline, late=late, recheck=recheck)
    finally:
        if listen and not conn.broken and not conn.closed:
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


def wait_reconnecting(
    connection: Callable[[float | None], AbstractContextManager[C]],
    *,
    channel: str,
    key: str,
    check: Callable[[C], T | None],
    timeout: float | None,
    late: str,
    recheck: float | None = None,
    what: str = "a notification",
    poll: float | None = None,
) -> T:
    """``wait_until`` on a connection from ``connection(seconds_left)`` (a pool's
    ``connection``), taking a new one after a backoff whenever it is lost, until the
    deadline. ``poll``: re-read every ``poll`` seconds instead of LISTENing (a pooler's
    connection). Raises TimeoutError(``late``) then, chained to the last connection error
    if the database was unreachable."""
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = Outage()
    while True:
        try:
            with connection(_patience_for_a_connection(deadline)) as conn:
                _reconnected(outage, what)
                return wait_until(
                    conn,
                    channel=channel,
                    key=key,
                    check=lambda: check(conn),
                    timeout=_left(deadline),
                    late=late,
                    recheck=poll or recheck,
                    listen=poll is None,
                )
        except CONNECTION_ERRORS as exc:  # a pool's PoolTimeout is an OperationalError too
            time.sleep(_backoff(outage, exc, deadline, late, what))


async def await_reconnecting(
    connection: Callable[[float | None], AbstractAsyncContextManager[A]],
    *,
    channel: str,
    key: str,
    check: Callable[[A], Awaitable[T | None]],
    timeout: float | None,
    late: str,
    recheck: float | None = None,
    what: str = "a notification",
    poll: float | None = None,
) -> T:
    """The async twin of ``wait_reconnecting``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = Outage()
    while True:
        try:
            async with connection(_patience_for_a_connection(deadline)) as conn:
                _reconnected(outage, what)
                return await await_until(
                    conn,
                    channel=channel,
                    key=key,
                    check=lambda: check(conn),
                    timeout=_left(deadline),
                    late=late,
                    recheck=poll or recheck,
                    listen=poll is None,
                )
        except CONNECTION_ERRORS as exc:  # a pool's PoolTimeout is an OperationalError too
            await asyncio.sleep(_backoff(outage, exc, deadline, late, what))


def _left(deadline: float | None) -> float | None:
    """Seconds to the deadline (0 once passed: the answer is still read once)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _patience_for_a_connection(deadline: float | None) -> float | None:
    """How long to wait for a pool connection: to the deadline, but long enough to get one
    that is free at once (``get(timeout=0)`` still reads the answer)."""
    left = _left(deadline)
    return None if left is None else max(left, MIN_CONNECTION_WAIT)


def _reconnected(outage: Outage, what: str) -> None:
    recovery = outage.recovered()
    if recovery is not None:
        log.info("waiting for %s: reconnected %s", what, recovery.describe())


def _backoff(outage: Outage, exc: BaseException, deadline: float | None, late: str, what: str) -> float:
    """The delay before the next attempt; TimeoutError(``late``) if the deadline comes first."""
    failure = outage.failed()
    if failure.starts:
        log.warning("waiting for %s: connection lost: %s; reconnecting with backoff", what, describe(exc))
    if deadline is None:
        return failure.delay
    remaining = deadline - time.monotonic()
    if remaining <= failure.delay:
        raise TimeoutError(f"{late} (the database was unreachable: {describe(exc)})") from exc
    return failure.delay


async def notifications(
    conn: psycopg.AsyncConnection[Any],
    *,
    idle: float = LISTEN_IDLE_PING,
    ping_timeout: float = LISTEN_PING_TIMEOUT,
) -> AsyncIterator[psycopg.Notify]:
    """The notifications ``conn`` (an autocommit AsyncConnection that LISTENs) receives,
    forever. After ``idle`` seconds without one, a round trip proves the server still
    answers; if it does not within ``ping_timeout``, the connection is cut and
    OperationalError raised (the caller reconnects and LISTENs again)."""
    heard = time.monotonic()
    while True:
        quiet_until = heard + idle
        async for note in conn.notifies(timeout=max(0.0, quiet_until - time.monotonic())):
            heard = time.monotonic()
            yield note
        if time.monotonic() >= heard + idle:
            await ping(conn, ping_timeout)
            heard = time.monotonic()


async def ping(conn: psycopg.AsyncConnection[Any], timeout: float) -> None:
    """One round trip on ``conn``. A server that does not answer within ``timeout`` gets the
    connection's socket shut down (no cancel request, which a partitioned network would
    not deliver either), and OperationalError is raised at once."""
    fired: list[bool] = []

    def cut() -> None:
        fired.append(True)
        _shut_down(conn)

    timer = asyncio.get_running_loop().call_later(timeout, cut)
    try:
        await conn.execute(_PING)
    except psycopg.Error:
        if not fired:
            raise
        raise psycopg.OperationalError(f"the server did not answer within {timeout:g} s") from None
    finally:
        timer.cancel()


def _shut_down(conn: psycopg.AsyncConnection[Any]) -> None:
    """Shut the connection's socket down in both directions: the pending read sees the end of
    the stream. The descriptor itself stays psycopg's to close (never a reused number)."""
    with contextlib.suppress(OSError, psycopg.Error):
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
