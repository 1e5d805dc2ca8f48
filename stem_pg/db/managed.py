"""Dedicated connections for the worker's loops, reopened with backoff after failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

import psycopg
from psycopg.rows import TupleRow

from stem_pg.db.connect import DatabaseUnavailable, connect_async

log = logging.getLogger(__name__)

AsyncConn = psycopg.AsyncConnection[TupleRow]
#: Errors after which a connection is thrown away and the loop retries.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


class Backoff:
    """Exponential delays with jitter, reset after a success."""

    def __init__(self, first: float = 0.1, maximum: float = 5.0) -> None:
        self.first = first
        self.maximum = maximum
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    async def sleep(self) -> None:
        delay = random.uniform(self._next / 2, self._next)
        self._next = min(self.maximum, self._next * 2)
        await asyncio.sleep(delay)


class ManagedConnection:
    """One loop's connection: opened on demand, discarded when it fails."""

    def __init__(
        self,
        url: str,
        role: str,
        on_connect: Callable[[AsyncConn], Awaitable[None]] | None = None,
        *,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.role = role
        self.on_connect = on_connect
        #: Called when a failure discards the connection (or a connect fails).
        self.on_lost = on_lost
        self._conn: AsyncConn | None = None

    async def get(self) -> AsyncConn:
        if self._conn is None or self._conn.closed:
            self._conn = await connect_async(self.url, role=self.role)
            if self.on_connect is not None:
                await self.on_connect(self._conn)
        return self._conn

    async def discard(self, error: BaseException | None = None) -> None:
        if error is not None:
            log.warning("%s connection lost: %s", self.role, str(error).strip() or type(error).__name__)
            if self.on_lost is not None:
                self.on_lost()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await conn.close()

    async def recover(self, error: BaseException) -> None:
        """After ``error`` from a query: keep the connection if it still works (a cancelled
        statement, a statement or lock timeout, a deadlock), else discard it."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            log.warning("%s query failed, connection kept: %s", self.role, str(error).strip())
            return
        await self.discard(error)

    @property
    def backend_pid(self) -> int | None:
        return None if self._conn is None or self._conn.closed else self._conn.info.backend_pid


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
    loop failed``) and the loop goes on."""
    backoff = Backoff()
    while not until():
        try:
            await once(await managed.get())
            backoff.reset()
        except CONNECTION_ERRORS as exc:
            await managed.recover(exc)
            await backoff.sleep()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s loop failed; retrying", label)
            await backoff.sleep()
