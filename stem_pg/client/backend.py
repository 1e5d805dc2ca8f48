"""What every client feature needs from the database: the URL, the namespace's queries,
the connection pools and the wake-ups of committed inserts.

The Stem facade builds one Backend and hands it to each feature (results,
broadcasts, canvas, locks, enqueue), so no feature reaches back into the
facade. Pools open on first use; the sync one may be opened by several
handler threads at once (``app.lock`` from tasks), so it is guarded. An async
pool belongs to the event loop that opened it (one per loop) and closes itself
when that loop shuts down: ``asyncio.run(app.aenqueue(...))`` needs no
``aclose()`` and never hangs at exit (psycopg_pool's background tasks, left
running, could swallow the loop's final cancellation and wait for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from stem_pg.client.waker import Waker, due_queues
from stem_pg.core.dsn import validate_url
from stem_pg.core.envelope import JobSpec
from stem_pg.core.signals import Signals
from stem_pg.db.connect import connect, connect_async, connection_options, pooled, with_keepalives
from stem_pg.db.queries import Queries, queries_for
from stem_pg.db.stores.enqueue import AsyncEnqueueStore, EnqueueStore

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

#: How long results are kept unless the application says otherwise (seconds).
DEFAULT_RESULT_TTL = 24 * 3600.0
_CLIENT = {"autocommit": True, "application_name": "stem_pg:client"}
#: Behind a transaction pooler a waiter (``get()``, a workflow's ``wait``) cannot LISTEN on its
#: pool connection: it re-reads this often (seconds) instead.
POOLED_WAIT_POLL = 0.05


class Backend:
    """One application's database side. ``url`` is a URL, or a callable that returns one
    (or raises ConfigError) when it is first needed, so an app without a URL can still
    be built, imported and planned with."""

    def __init__(
        self,
        url: str | Callable[[], str],
        namespace: str,
        *,
        result_ttl: float = DEFAULT_RESULT_TTL,
        pool_size: int = 10,
        direct_url: str | None = None,
    ) -> None:
        self._url = url
        #: A connection straight to Postgres, for what a transaction pooler cannot carry
        #: (LISTEN, the worker's vacuum): STEM_DIRECT_URL, ``Stem(direct_url=)``, ``--direct-url``.
        self.direct_url = validate_url(direct_url, source="direct_url") if direct_url else None
        self.namespace = namespace
        self.result_ttl = result_ttl
        self.pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        #: Each event loop's async pool, and the task that closes it when the loop shuts down.
        self._async_pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncConnectionPool, asyncio.Task[None]]
        ] = weakref.WeakKeyDictionary()
        self._quiet: weakref.WeakSet[object] = weakref.WeakSet()
        self._waker: Waker | None = None
        self._reached = False  # whether a connection to the database ever opened
        #: The app's hooks (stem_pg.core.signals): every feature that sends one reads them here.
        self.signals = Signals()

    @property
    def url(self) -> str:
        return self._url if isinstance(self._url, str) else self._url()

    @url.setter
    def url(self, url: str) -> None:
        """Point the backend at another database (``--url``), before its pools open."""
        self._url = url
        self._reached = False

    @property
    def queries(self) -> Queries:
        return queries_for(self.namespace)

    @property
    def pooled(self) -> bool:
        """Whether ``url`` is a pooler in transaction mode (``?stem_pooler=transaction``):
        then no session state is kept on its connections (see README, Deployment)."""
        return pooled(self.url)

    @property
    def wait_poll(self) -> float | None:
        """How often a waiter re-reads instead of LISTENing (behind a pooler), else None."""
        return POOLED_WAIT_POLL if self.pooled else None

    @property
    def listen_url(self) -> str | None:
        """Where LISTEN goes: the direct URL when set, else ``url``, except behind a
        transaction pooler (None: a pooled session cannot LISTEN; waiters poll)."""
        return self.listening_url(self.url, self.direct_url)

    @staticmethod
    def listening_url(url: str, direct_url: str | None) -> str | None:
        """``listen_url`` for ``url`` and ``direct_url``."""
        if direct_url:
            return direct_url
        return None if pooled(url) else url

    # -- pools ----------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool:
        """The sync pool, opened on first use."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._first_contact()
                self._pool = ConnectionPool(
                    with_keepalives(self.url),
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={**_CLIENT, **connection_options(self.url)},
                    configure=None if self.pooled else self._quiet_inserts,
                    open=True,
                )
            return self._pool

    async def apool(self) -> AsyncConnectionPool:
        """The running event loop's async pool, opened on first use; it closes when the
        loop shuts down (``asyncio.run`` returning), or on ``await aclose()``."""
        loop = asyncio.get_running_loop()
        if loop in self._async_pools:
            return self._async_pools[loop][0]
        from psycopg_pool import AsyncConnectionPool

        if not self._reached:  # as in ``_first_contact``
            await (await connect_async(self.url, role="client")).close()
            self._reached = True
            if loop in self._async_pools:  # another task opened it while we connected
                return self._async_pools[loop][0]
        pool = AsyncConnectionPool(
            with_keepalives(self.url),
            min_size=1,
            max_size=self.pool_size,
            kwargs={**_CLIENT, **connection_options(self.url)},
            configure=None if self.pooled else self._aquiet_inserts,
            open=False,
        )
        closer = loop.create_task(self._close_with_loop(loop, pool), name="stem_pg: async pool closer")
        self._async_pools[loop] = (pool, closer)
        try:
            # Waiting for the first connection keeps a first call from starting a second one
            # that would still be connecting when a short-lived loop ends.
            await pool.open(wait=True)
        except BaseException:
            await self.close_async_pool()
            raise
        return pool

    def _first_contact(self) -> None:
        """One plain connection before the first pool opens: an unreachable database is
        one clear error (DatabaseUnavailable) within seconds, not a PoolTimeout after 30.
        Once reached, a pool opened again (after ``close()``) waits through an outage."""
        if not self._reached:
            connect(self.url, role="client").close()
            self._reached = True

    async def _close_with_loop(self, loop: asyncio.AbstractEventLoop, pool: AsyncConnectionPool) -> None:
        """Wait until cancelled, as ``asyncio.run`` cancels every task before it closes the
        loop; then close the pool, so its workers end instead of outliving the loop."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._async_pools.get(loop, (None,))[0] is pool:
                del self._async_pools[loop]
                await pool.close(timeout=1.0)

    def _quiet_inserts(self, conn: psycopg.Connection[Any]) -> None:
        """Pool connections insert without the trigger's NOTIFY; the waker sends it after commit."""
        EnqueueStore(self.queries).quiet_inserts(conn)
        self._quiet.add(conn)

    async def _aquiet_inserts(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await AsyncEnqueueStore(self.queries).quiet_inserts(conn)
        self._quiet.add(conn)

    # -- wake-ups ---------------------------------------------------------------------

    @property
    def waker(self) -> Waker:
        """Sends the wake-ups of this application's committed inserts (stem_pg.client.waker)."""
        if self._waker is None:
            self._waker = Waker(self.url, self.queries)
        return self._waker

    def wake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """Announce inserted jobs: after a pool commit through the waker; inside a caller's
        transaction the insert trigger does it, unless that connection is one of our pool's."""
        queues = self._announce(specs, connection)
        if queues is not None:
            EnqueueStore(self.queries).wake(connection, queues=queues)

    async def awake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """The async twin of ``wake``."""
        queues = self._announce(specs, connection)
        if queues is not None:
            await AsyncEnqueueStore(self.queries).wake(connection, queues=queues)

    def _announce(self, specs: Iterable[JobSpec], connection: Any) -> list[str] | None:
        """Hand a pool commit's queues to the waker; the queues that the caller's own
        transaction, on one of our pool connections, must wake itself."""
        queues = due_queues(specs)
        if not queues or self.pooled:  # behind a pooler the insert trigger sends the NOTIFY
            return None
        if connection is None:
            self.waker.request(queues)
            return None
        if connection in self._quiet:
            return sorted(queues)
        return None

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the synchronous pool (use ``aclose`` for the async one)."""
        if self._waker is not None:
            self._waker.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def close_async_pool(self) -> None:
        """Close the running loop's async pool, if it has one (a pool belongs to its loop:
        a worker closes the one its handlers opened, not one its host program's loop uses)."""
        found = self._async_pools.pop(asyncio.get_running_loop(), None)
        if found is not None:
            pool, closer = found
            closer.cancel()
            await pool.close()

    async def aclose(self) -> None:
        """Close the running loop's async pool, the sync pool and the waker."""
        await self.close_async_pool()
        self.close()


class BackendFacade:
    """The Backend's attributes on an object that holds one as ``backend``: the Stem facade
    keeps ``app.url``, ``app.pool``, ``app.wake``... for the worker, beat, CLI and tests."""

    backend: Backend

    @property
    def url(self) -> str:
        return self.backend.url

    @url.setter
    def url(self, url: str) -> None:
        self.backend.url = url

    @property
    def namespace(self) -> str:
        return self.backend.namespace

    @namespace.setter
    def namespace(self, namespace: str) -> None:
        self.backend.namespace = namespace

    @property
    def queries(self) -> Queries:
        return self.backend.queries

    @property
    def result_ttl(self) -> float:
        return self.backend.result_ttl

    @result_ttl.setter
    def result_ttl(self, seconds: float) -> None:
        self.backend.result_ttl = seconds

    @property
    def pool_size(self) -> int:
        return self.backend.pool_size

    @property
    def direct_url(self) -> str | None:
        return self.backend.direct_url

    @direct_url.setter
    def direct_url(self, url: str | None) -> None:
        self.backend.direct_url = url

    @property
    def pool(self) -> ConnectionPool:
        return self.backend.pool

    async def apool(self) -> AsyncConnectionPool:
        """The async pool, opened on first use (in the running event loop)."""
        return await self.backend.apool()

    @property
    def waker(self) -> Waker:
        return self.backend.waker

    def wake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """Announce inserted jobs (see ``Backend.wake``)."""
        self.backend.wake(specs, connection)

    async def awake(self, specs: Iterable[JobSpec], connection: Any = None) -> None:
        """The async twin of ``wake``."""
        await self.backend.awake(specs, connection)

    def close(self) -> None:
        """Close the synchronous pool (use ``aclose`` for the async one)."""
        self.backend.close()

    async def close_async_pool(self) -> None:
        """Close the async pool if this event loop opened it (see ``Backend.close_async_pool``)."""
        await self.backend.close_async_pool()

    async def aclose(self) -> None:
        await self.backend.aclose()


@contextlib.contextmanager
def read_only_discarded(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Close a pool connection whose write the database refused as read-only (a failover):
    a session opened while the database was read-only stays so, so the pool opens a new one."""
    try:
        yield
    except psycopg.errors.ReadOnlySqlTransaction:
        conn.close()
        raise


@contextlib.asynccontextmanager
async def aread_only_discarded(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """The async twin of ``read_only_discarded``."""
    try:
        yield
    except psycopg.errors.ReadOnlySqlTransaction:
        await conn.close()
        raise
