"""The lock store: acquire, renew, release and inspect locks (sync for ``app.lock``, async for beat)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]
AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class LockLease:
    """A held lock. ``token`` grows with every acquisition of the key: a fencing token."""

    key: str
    owner: str
    token: int
    expires_at: datetime


@dataclass(frozen=True)
class LockInfo:
    """Who holds a key; ``held`` is False once it expired."""

    key: str
    owner: str
    token: int
    acquired_at: datetime
    expires_at: datetime
    held: bool


def _params(key: str, owner: str, token: int | None = None, ttl: float | None = None) -> dict[str, Any]:
    return {"key": key, "owner": owner, "token": token, "ttl": ttl}


class LockStore:
    """Lock queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def acquire(self, conn: Conn, *, key: str, owner: str, ttl: float) -> LockLease | None:
        """Take ``key`` if it is free, expired or ours; None if someone else holds it."""
        with conn.cursor(row_factory=class_row(LockLease)) as cur:
            cur.execute(self.q["lock_acquire"], _params(key, owner, ttl=ttl))
            return cur.fetchone()

    def renew(self, conn: Conn, *, key: str, owner: str, token: int, ttl: float) -> LockLease | None:
        """Extend our hold; None if the lock was taken over (or released) meanwhile."""
        with conn.cursor(row_factory=class_row(LockLease)) as cur:
            cur.execute(self.q["lock_renew"], _params(key, owner, token, ttl))
            return cur.fetchone()

    def release(self, conn: Conn, *, key: str, owner: str, token: int) -> bool:
        """Give the lock back; False if it was not ours any more."""
        return conn.execute(self.q["lock_release"], _params(key, owner, token)).fetchone() is not None

    def get(self, conn: Conn, *, key: str) -> LockInfo | None:
        with conn.cursor(row_factory=class_row(LockInfo)) as cur:
            cur.execute(self.q["lock_get"], {"key": key})
            return cur.fetchone()


class AsyncLockStore:
    """The same queries on an asynchronous connection (beat's leader lease, ``app.alock``)."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def acquire(self, conn: AsyncConn, *, key: str, owner: str, ttl: float) -> LockLease | None:
        async with conn.cursor(row_factory=class_row(LockLease)) as cur:
            await cur.execute(self.q["lock_acquire"], _params(key, owner, ttl=ttl))
            return await cur.fetchone()

    async def renew(
        self, conn: AsyncConn, *, key: str, owner: str, token: int, ttl: float
    ) -> LockLease | None:
        async with conn.cursor(row_factory=class_row(LockLease)) as cur:
            await cur.execute(self.q["lock_renew"], _params(key, owner, token, ttl))
            return await cur.fetchone()

    async def release(self, conn: AsyncConn, *, key: str, owner: str, token: int) -> bool:
        cur = await conn.execute(self.q["lock_release"], _params(key, owner, token))
        return await cur.fetchone() is not None

    async def get(self, conn: AsyncConn, *, key: str) -> LockInfo | None:
        async with conn.cursor(row_factory=class_row(LockInfo)) as cur:
            await cur.execute(self.q["lock_get"], {"key": key})
            return await cur.fetchone()
