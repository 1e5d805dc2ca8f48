"""``app.lock(...)``: owner-checked, expiring locks from tasks or any code, with fencing tokens."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from datetime import timedelta
from types import TracebackType

from stem_pg.client.backend import Backend
from stem_pg.core.envelope import check_name
from stem_pg.core.errors import LockNotAcquired, StemError
from stem_pg.core.storable import shown
from stem_pg.db.stores.locks import AsyncLockStore, LockLease, LockStore

RETRY_INTERVAL = 0.1


def default_owner() -> str:
    """A new owner name that says where the holder runs: host, pid and a random part."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def _ttl(ttl: float | timedelta) -> float:
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise StemError(f"lock ttl must be a positive number of seconds, got {ttl!r}")
    return float(seconds)


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise StemError(f"lock key must be a non-empty string, got {shown(key)}")
    return check_name(key, what="lock key")


class _LockBase:
    def __init__(
        self, backend: Backend, key: str, ttl: float | timedelta, owner: str | None, *, wait: float = 0.0
    ) -> None:
        self.backend = backend
        self.key = _key(key)
        self.ttl = _ttl(ttl)
        self.owner = check_name(owner, what="lock owner") if owner else default_owner()
        self.wait = max(0.0, wait)
        self.lease: LockLease | None = None

    @property
    def token(self) -> int:
        """The fencing token of this hold: larger than any earlier holder's."""
        if self.lease is None:
            raise StemError(f"lock {self.key!r} is not held")
        return self.lease.token

    def _not_acquired(self) -> LockNotAcquired:
        return LockNotAcquired(f"lock {self.key!r} is held by someone else (waited {self.wait:g}s)")


class Lock(_LockBase):
    """A lock of the app's namespace; a context manager that acquires and releases it."""

    def acquire(self) -> bool:
        """Take the lock, retrying for up to ``wait`` seconds; False if someone else holds it."""
        store = LockStore(self.backend.queries)
        deadline = time.monotonic() + self.wait
        while True:
            with self.backend.pool.connection() as conn:
                self.lease = store.acquire(conn, key=self.key, owner=self.owner, ttl=self.ttl)
            if self.lease is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(RETRY_INTERVAL)

    def renew(self, ttl: float | timedelta | None = None) -> bool:
        """Extend the hold by ``ttl`` (default: the lock's); False if it was lost meanwhile."""
        if self.lease is None:
            return False
        with self.backend.pool.connection() as conn:
            self.lease = LockStore(self.backend.queries).renew(
                conn, key=self.key, owner=self.owner, token=self.lease.token, ttl=_ttl(ttl or self.ttl)
            )
        return self.lease is not None

    def release(self) -> bool:
        """Give the lock back; False if it had already expired and been taken by someone else."""
        lease, self.lease = self.lease, None
        if lease is None:
            return False
        with self.backend.pool.connection() as conn:
            return LockStore(self.backend.queries).release(
                conn, key=self.key, owner=self.owner, token=lease.token
            )

    def __enter__(self) -> Lock:
        if not self.acquire():
            raise self._not_acquired()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class AsyncLock(_LockBase):
    """The async twin of Lock: ``async with app.alock("key", ttl=30): ...``."""

    async def acquire(self) -> bool:
        store = AsyncLockStore(self.backend.queries)
        deadline = time.monotonic() + self.wait
        while True:
            async with (await self.backend.apool()).connection() as conn:
                self.lease = await store.acquire(conn, key=self.key, owner=self.owner, ttl=self.ttl)
            if self.lease is not None:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(RETRY_INTERVAL)

    async def renew(self, ttl: float | timedelta | None = None) -> bool:
        if self.lease is None:
            return False
        async with (await self.backend.apool()).connection() as conn:
            self.lease = await AsyncLockStore(self.backend.queries).renew(
                conn, key=self.key, owner=self.owner, token=self.lease.token, ttl=_ttl(ttl or self.ttl)
            )
        return self.lease is not None

    async def release(self) -> bool:
        lease, self.lease = self.lease, None
        if lease is None:
            return False
        async with (await self.backend.apool()).connection() as conn:
            return await AsyncLockStore(self.backend.queries).release(
                conn, key=self.key, owner=self.owner, token=lease.token
            )

    async def __aenter__(self) -> AsyncLock:
        if not await self.acquire():
            raise self._not_acquired()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()
