"""Dedicated connections for the worker's and beat's loops, reopened with backoff after failures.

Each ``ManagedConnection`` keeps one ``core.backoff.Outage``: after a lost connection
the loop waits an exponentially growing, jittered delay (to a cap of a few seconds)
before each new attempt, logs one warning when the outage starts and one
"reconnected after N s" line when it ends.

A database that refuses writes (SQLSTATE 25006: a primary turned read-only, a standby a
pooler or DNS name now points at) counts as a lost connection too: it is discarded and a
new one is opened after the backoff, since the next one may reach the new primary. The
process logs one "database is read-only" warning for all its loops (``ReadOnlyNotice``),
and one line when writes work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg.rows import TupleRow

from stem_pg.core.backoff import Outage
from stem_pg.db.connect import DatabaseUnavailable, connect_async

log = logging.getLogger(__name__)

AsyncConn = psycopg.AsyncConnection[TupleRow]
#: The database refuses writes (a read-only primary, a standby after a failover).
READ_ONLY_ERRORS = (psycopg.errors.ReadOnlySqlTransaction,)
#: Errors after which a connection is thrown away and the loop retries.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable, *READ_ONLY_ERRORS)


def describe(error: BaseException) -> str:
    """An error on one line, for a log message."""
    return " ".join(str(error).split()) or type(error).__name__


class ReadOnlyNotice:
    """One warning per process when its loops find the database read-only, and one line
    when every loop that found it so has written again."""

    def __init__(self) -> None:
        self.outage = Outage()
        self._roles: set[str] = set()

    def failed(self, role: str, error: BaseException) -> None:
        if self.outage.failed().starts:
            log.warning(
                "database is read-only (%s); retrying: each loop reconnects with backoff until it"
                " accepts writes again",
                describe(error),
            )
        self._roles.add(role)

    def wrote(self, role: str) -> None:
        if role not in self._roles:
            return
        self._roles.discard(role)
        recovery = None if self._roles else self.outage.recovered()
        if recovery is not None:
            log.info("database accepts writes again %s", recovery.describe())


#: The process's notice (its loops share one line).
READ_ONLY = ReadOnlyNotice()


class ManagedConnection:
    """One loop's connection: opened on demand, discarded when it fails."""

    def __init__(
        self,
        url: str,
        role: str,
        on_connect: Callable[[AsyncConn], Awaitable[None]] | None = None,
        *,
        on_lost: Callable[[], None] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
        shared: bool = False,
    ) -> None:
        self.url = url
        self.role = role
        #: Several loops use it, each statement (and transaction) in turn (stem_pg.db.shared).
        self.shared = shared
        self._opening = asyncio.Lock()  # loops that share it open it once
        self.on_connect = on_connect
        #: Called when a failure discards the connection (or a connect fails).
        self.on_lost = on_lost
        #: Called with ``role`` when a connection opens after a loss (the metrics count them).
        self.on_reconnect = on_reconnect
        #: Lost connections: the reconnect backoff and the outage's two log lines.
        self.outage = Outage()
        #: Failed queries on a connection that still works (a statement timeout...): their backoff.
        self._errors = Outage()
        self._conn: AsyncConn | None = None
        #: The last loss was a read-only database: the outage ends with a write, not a connect.
        self._read_only = False
        self.notice = READ_ONLY
        #: A shared connection's next reconnect attempt (monotonic): the loops that share it
        #: wait for one attempt together instead of each making its own.
        self._retry_at = 0.0

    async def get(self) -> AsyncConn:
        if self._conn is None or self._conn.closed:
            async with self._opening:
                if self._conn is None or self._conn.closed:
                    if self.shared and time.monotonic() < self._retry_at:
                        raise DatabaseUnavailable(f"{self.role}: waiting for the next reconnect attempt")
                    await self._open()
        assert self._conn is not None
        return self._conn

    async def _open(self) -> None:
        conn = await connect_async(self.url, role=self.role, shared=self.shared)
        try:
            if self.on_connect is not None:
                await self.on_connect(conn)
        except BaseException:
            await _close(conn)
            raise
        self._conn = conn
        recovery = None if self._read_only else self.outage.recovered()
        if recovery is not None:
            log.info("%s reconnected %s", self.role, recovery.describe())
            if self.on_reconnect is not None:
                self.on_reconnect(self.role)

    async def discard(self) -> None:
        """Close the connection (if open); the next ``get()`` opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn)

    async def lost(self, error: BaseException, used: AsyncConn | None = None) -> None:
        """The connection failed (or could not be opened): discard it, log if this starts an
        outage, and sleep the backoff delay before the caller tries again. ``used``: the
        connection that failed; when another loop sharing it has opened a new one since,
        that one is kept and the caller tries it at once, and while another has a retry
        due, the caller waits for that one instead of counting (and making) its own."""
        if used is not None and self._conn is not None and used is not self._conn:
            return
        wait = self._retry_at - time.monotonic()
        if self.shared and wait > 0:  # another loop sharing it failed just now: its retry is ours
            await self.discard()
            await asyncio.sleep(wait)
            return
        failure = self.outage.failed()
        if isinstance(error, READ_ONLY_ERRORS):
            # Sticky until a write succeeds (``settled``): a later error of another kind (a
            # terminated session, a refused connect) does not end the read-only outage.
            self._read_only = True
            self.notice.failed(self.role, error)
            log.debug("%s: database read-only (attempt %d)", self.role, failure.attempts)
        elif self._read_only:
            log.debug("%s: attempt %d failed (read-only): %s", self.role, failure.attempts, describe(error))
        elif failure.starts:
            log.warning("%s connection lost: %s; reconnecting with backoff", self.role, describe(error))
        else:
            log.debug("%s reconnect attempt %d failed: %s", self.role, failure.attempts, describe(error))
        if self.on_lost is not None:
            self.on_lost()
        await self.discard()
        self._retry_at = time.monotonic() + failure.delay
        await asyncio.sleep(failure.delay)

    async def recover(self, error: BaseException, used: AsyncConn | None = None) -> None:
        """After ``error`` from a query on ``used``: keep the connection if it still works (a
        cancelled statement, a statement or lock timeout, a deadlock), else it is ``lost``;
        either way sleep a backoff delay before the caller tries again."""
        conn = self._conn
        if (
            conn is not None
            and not conn.closed
            and not conn.broken
            and (used is None or used is conn)
            and not isinstance(error, READ_ONLY_ERRORS)
        ):
            log.warning("%s query failed, connection kept: %s", self.role, describe(error))
            await asyncio.sleep(self._errors.failed().delay)
            return
        await self.lost(error, used)

    def settled(self, used: AsyncConn | None = None) -> None:
        """A query succeeded (on ``used``): the next failed one starts its backoff from the
        beginning. It ends a read-only outage only on the current session, and one that can
        write: loops that share a connection also read (a read succeeds on a read-only
        session), and one of them may finish on a session another has since discarded."""
        self._errors.recovered()
        used = used or self._conn
        if self._read_only and used is self._conn and session_writable(used):
            self._read_only = False
            recovery = self.outage.recovered()
            if recovery is not None:
                log.debug("%s writes again %s", self.role, recovery.describe())
            self.notice.wrote(self.role)

    @property
    def backend_pid(self) -> int | None:
        return None if self._conn is None or self._conn.closed else self._conn.info.backend_pid


def session_writable(conn: AsyncConn | None) -> bool:
    """Whether ``conn`` is open on a session that takes writes, as the server reports it
    (Postgres 14+ reports both settings; an older server, neither: taken as writable)."""
    if conn is None or conn.closed:
        return False
    return all(
        conn.info.parameter_status(name) != "on"
        for name in ("default_transaction_read_only", "in_hot_standby")
    )


async def _close(conn: AsyncConn) -> None:
    if not conn.closed:
        with contextlib.suppress(Exception):
            await conn.close()


async def run_guarded(
    label: str,
    managed: ManagedConnection,
    once: Callable[[AsyncConn], Awaitable[None]],
    *,
    until: Callable[[], bool] = lambda: False,
) -> None:
    """Run ``once`` on ``managed``'s connection over and over, until cancelled or until
    ``until()``: a lost connection is discarded and reopened after a backoff (one that
    only had a statement cancelled is kept), any other error is logged (as ``<label>
    loop failed``) and the loop goes on after a backoff."""
    failures = Outage()
    while not until():
        conn: AsyncConn | None = None
        try:
            conn = await managed.get()
            await once(conn)
            managed.settled(conn)
            failures.recovered()
        except CONNECTION_ERRORS as exc:
            await managed.recover(exc, conn)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s loop failed; retrying", label)
            await asyncio.sleep(failures.failed().delay)
