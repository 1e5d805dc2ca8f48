"""Writing outcomes in batches: job completions, retries, releases and broadcast acks.

Outcomes wait in memory until a flush writes them; a lost connection keeps
them buffered (their leases still extended by the worker) until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg

from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn, Backoff, ManagedConnection
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import Finish, Outcome, Release, RetryLater
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


class OutcomeFlusher:
    """The worker's write side: ``add`` buffers, the flush loop writes."""

    def __init__(
        self,
        jobs: JobStore,
        acks: BroadcastAcks,
        managed: ManagedConnection,
        *,
        worker_id: str,
    ) -> None:
        self.jobs = jobs
        self.acks = acks
        self.managed = managed
        self.worker_id = worker_id
        self.outcomes: list[Outcome] = []
        #: Outcomes written only by ``final``: their attempts still run in threads of this
        #: process, which must be gone before another worker may start them again.
        self.held: list[Outcome] = []
        self.unflushed: dict[str, Inflight] = {}
        self.wanted = asyncio.Event()
        #: One flush at a time: ``final`` must wait for a flush under way, whose batch has
        #: left the buffer, or it finds nothing to write and the loop's write is cancelled.
        self._lock = asyncio.Lock()

    def add(self, entry: Inflight, outcome: Outcome) -> None:
        self.unflushed[entry.job.id] = entry
        self.outcomes.append(outcome)
        self.wanted.set()

    def hold(self, entry: Inflight, outcome: Outcome) -> None:
        """Keep ``outcome`` (and the lease of its job) until ``final``."""
        self.unflushed[entry.job.id] = entry
        self.held.append(outcome)

    @property
    def pending(self) -> bool:
        return bool(self.outcomes or self.held or self.acks.pending)

    async def loop(self) -> None:
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            await self.flush_once()

    async def flush_once(self) -> None:
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        batch, self.outcomes = self.outcomes, []
        if not batch and not self.acks.pending:
            return
        try:
            conn = await self.managed.get()
            if batch:
                await self._write(conn, batch)
                self._forget(batch)
                batch = []
            await self.acks.flush(conn)
        except TRANSIENT_ERRORS as exc:  # before CONNECTION_ERRORS: they are OperationalErrors too
            # Two flushes finishing members of the same canvases in different orders can
            # deadlock in the jobs_done trigger; Postgres aborts one, which simply retries
            # on the same connection.
            log.info("worker %s: flush retried after %s", self.worker_id, type(exc).__name__)
            self.outcomes[:0] = batch
            await Backoff(0.05, 0.05).sleep()
            self.wanted.set()
        except CONNECTION_ERRORS as exc:
            self.outcomes[:0] = batch
            await self.managed.recover(exc)
            await Backoff(0.2, 0.2).sleep()
            self.wanted.set()
        except Exception:
            log.exception("worker %s: dropping %d outcomes that failed to flush", self.worker_id, len(batch))
            self._forget(batch)

    def _forget(self, batch: list[Outcome]) -> None:
        for outcome in batch:
            self.unflushed.pop(outcome.id, None)

    async def _write(self, conn: AsyncConn, batch: list[Outcome]) -> None:
        finishes = [o for o in batch if isinstance(o, Finish)]
        retries = [o for o in batch if isinstance(o, RetryLater)]
        releases = [o for o in batch if isinstance(o, Release)]
        writes: list[Callable[[], Awaitable[object]]] = []
        if finishes:
            writes.append(lambda: self.jobs.finish(conn, outcomes=finishes))
        if retries:
            writes.append(lambda: self.jobs.retry(conn, outcomes=retries))
        if releases:
            writes.append(lambda: self.jobs.release(conn, outcomes=releases))
        if len(writes) == 1:
            await writes[0]()
            return
        async with conn.transaction():
            for write in writes:
                await write()

    async def final(self, *, forced: bool) -> None:
        """Flush what is left before the worker exits (briefly when forced)."""
        deadline = time.monotonic() + (1.0 if forced else 10.0)
        self.outcomes.extend(self.held)
        self.held = []
        while time.monotonic() < deadline:
            await self.flush_once()  # after the one under way, if any
            if not self.pending:
                break
            await asyncio.sleep(0.2)
        if self.pending:
            log.error(
                "worker %s: %d outcomes and %d broadcast acks not flushed; leases will expire and"
                " the rescuer will retry the jobs, unacked at-least-once messages run again on restart",
                self.worker_id,
                len(self.outcomes),
                len(self.acks.pending),
            )
