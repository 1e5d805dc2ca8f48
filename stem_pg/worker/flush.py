"""Writing outcomes in batches: job completions, retries, releases and broadcast acks.

Outcomes wait in memory until a flush writes them; a lost connection keeps
them buffered (their leases still extended by the worker) until it is back. A batch
the database refuses is split until the refused outcome is found: that job fails
with the database's error, and every other outcome is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import psycopg

from stem_pg.core.logs import job_fields
from stem_pg.core.states import DeadLetterReason, TaskState
from stem_pg.core.storable import storable_text
from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn, ManagedConnection
from stem_pg.db.stores.jobs import FinishSent, JobStore
from stem_pg.db.stores.rows import Finish, Outcome, Release, RetryLater
from stem_pg.worker.broadcasts import BroadcastAcks
from stem_pg.worker.context import Inflight

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: How long the final flush waits for a write already under way when the worker stops.
FINAL_WAIT = 10.0
#: A flush asked for within this long (seconds) of the previous one's end waits out the rest,
#: so that outcomes of a busy worker are written together (a round trip and a durable commit
#: per batch, not per few jobs, at low concurrency); one asked for after a quiet spell goes at
#: once, and so does one with ``FLUSH_BATCH`` outcomes waiting. At 2 processes x 2 slots, 20 ms
#: against 2 ms: 1.3-1.7x the no-op jobs/s at 0.7-0.9x Postgres' CPU per job (bench/RESULTS.md).
FLUSH_LINGER = 0.02
#: Outcomes that end a linger early: a batch this big gains little from waiting for more.
FLUSH_BATCH = 100
#: SQLSTATE classes of errors a statement's data causes: data exceptions (22), integrity
#: constraints (23), program limits (54: a value too big for jsonb, for instance).
DATA_ERROR_CLASSES = frozenset({"22", "23", "54"})


def refused(exc: Exception) -> bool:
    """True when the database (or psycopg, before sending) refused what a write carried, as
    opposed to a lost connection or an aborted transaction, after which it is worth retrying."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return False
    sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    return (sqlstate or "")[:2] in DATA_ERROR_CLASSES or not isinstance(exc, CONNECTION_ERRORS)


def database_error(exc: Exception) -> str:
    """The error in one line: its message and the database's detail, when it gave one."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        detail = exc.diag.message_detail
        return f"{type(exc).__name__}: {exc.diag.message_primary}" + (f" ({detail})" if detail else "")
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class ClaimInFlush(Protocol):
    """A claim made in the transaction that writes outcomes (stem_pg.worker.limited)."""

    def claim_wanted(self) -> bool: ...

    async def claim_in_flush(self, conn: AsyncConn) -> Callable[[], Awaitable[None]]: ...

    def claim_abandoned(self) -> None: ...


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
        #: Told the size and the seconds of each flush that wrote outcomes (the metrics).
        self.on_flushed: Callable[[int, float], None] | None = None
        self.acks = acks
        self.managed = managed
        self.worker_id = worker_id
        self.outcomes: list[Outcome] = []
        #: Outcomes written only by ``final``: their attempts still run in threads of this
        #: process, which must be gone before another worker may start them again.
        self.held: list[Outcome] = []
        self.unflushed: dict[str, Inflight] = {}
        self.wanted = asyncio.Event()
        #: Set when what waits must not linger (``FLUSH_BATCH`` outcomes, or ``hurry``).
        self._now = asyncio.Event()
        #: One flush at a time: ``final`` waits for the loop's write instead of racing it.
        self._lock = asyncio.Lock()
        self._writing = 0  # outcomes in the write under way
        self._closed = False
        #: Jobs whose outcome the database refused: a failure is being written instead.
        self.refused_ids: set[str] = set()
        #: Run on the flush connection after each write of outcomes (the limited claims
        #: tell other workers of freed concurrency slots).
        self.after_write: Callable[[AsyncConn], Awaitable[None]] | None = None
        #: When it wants to (a finished job freed a concurrency slot), claims in the
        #: transaction that writes the batch: one commit for the finish and the next start.
        self.claim: ClaimInFlush | None = None
        self.linger = FLUSH_LINGER
        self._last_flush = -FLUSH_LINGER  # time.monotonic() when the last flush ended

    def add(self, entry: Inflight, outcome: Outcome) -> None:
        self.unflushed[entry.job.id] = entry
        self.outcomes.append(outcome)
        self.wanted.set()
        if len(self.outcomes) >= FLUSH_BATCH:
            self._now.set()

    def hurry(self) -> None:
        """Write what waits without lingering: a finish that frees a concurrency slot (other
        workers, and this one's claim in the flush, wait for its write)."""
        self._now.set()

    def hold(self, entry: Inflight, outcome: Outcome) -> None:
        """Keep ``outcome`` (and the lease of its job) until ``final``."""
        self.unflushed[entry.job.id] = entry
        self.held.append(outcome)

    @property
    def pending(self) -> bool:
        return bool(self.outcomes or self.held or self.acks.pending)

    async def loop(self) -> None:
        """Flush whenever asked, until ``final`` took over (then cancelling it loses nothing)."""
        while not self._closed:
            await self.wanted.wait()
            wait = self._last_flush + self.linger - time.monotonic()
            if wait > 0 and not (self.claim is not None and self.claim.claim_wanted()):
                # A concurrency slot's hand-off (claim_wanted, hurry) is never held back,
                # nor a full batch.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._now.wait()
            self.wanted.clear()
            self._now.clear()
            await self.flush_once()

    async def flush_once(self) -> None:
        async with self._lock:
            if not self._closed:
                await self._flush()
                self._last_flush = time.monotonic()

    async def _flush(self) -> None:
        batch, self.outcomes = self.outcomes, []
        if not batch and not self.acks.pending:
            return
        self._writing = len(batch)
        chunks = [batch] if batch else []  # what is left to write, a stack: the last is written next
        began = time.perf_counter()
        try:
            conn = await self.managed.get()
            if batch and self.claim is not None and self.claim.claim_wanted():
                await self._write_and_claim(conn, batch, self.claim, chunks)
            while chunks:
                await self._write_chunk(conn, chunks)
            if batch and self.after_write is not None:
                await self.after_write(conn)
            await self.acks.flush(conn)
            self.managed.settled(conn)
            if self.on_flushed is not None and batch:
                self.on_flushed(len(batch), time.perf_counter() - began)
        except TRANSIENT_ERRORS as exc:  # before CONNECTION_ERRORS: they are OperationalErrors too
            # Two flushes finishing members of the same canvases in different orders can
            # deadlock in the jobs_done trigger; Postgres aborts one, which simply retries
            # on the same connection.
            log.info("worker %s: flush retried after %s", self.worker_id, type(exc).__name__)
            self._put_back(chunks)
            await asyncio.sleep(random.uniform(0.025, 0.05))
            self.wanted.set()
        except CONNECTION_ERRORS as exc:
            # The outcomes stay buffered; the connection's backoff paces the retries (one
            # warning per outage, not one per attempt).
            self._put_back(chunks)
            await self.managed.recover(exc)
            self.wanted.set()
        except Exception:  # not the outcomes' fault (that is handled per chunk): the acks, a bug
            kept = self._put_back(chunks)
            log.exception("worker %s: flush failed; %d outcomes kept for the next one", self.worker_id, kept)
            if kept:
                await asyncio.sleep(random.uniform(0.1, 0.2))
                self.wanted.set()
        finally:
            self._writing = 0

    async def _write_and_claim(
        self, conn: AsyncConn, batch: list[Outcome], claim: ClaimInFlush, chunks: list[list[Outcome]]
    ) -> None:
        """Write ``batch`` and claim in one transaction; if anything in it fails, nothing of it
        was written or claimed, and ``chunks`` is left to the plain writes (which find a
        refused outcome, or raise what a lost connection raises)."""
        try:  # BEGIN, the writes, the claim and COMMIT: one round trip
            async with conn.pipeline(), conn.transaction():
                sent = await self._write(conn, batch)
                start = await claim.claim_in_flush(conn)
        except Exception as exc:
            claim.claim_abandoned()
            if conn.closed or conn.broken:
                raise
            if not isinstance(exc, psycopg.Error):
                log.exception("worker %s: the claim in a flush failed; flushing without it", self.worker_id)
            return
        chunks.clear()
        await self._skipped(sent)
        self._forget(batch)
        await start()

    async def _write_chunk(self, conn: AsyncConn, chunks: list[list[Outcome]]) -> None:
        """Write the top chunk; when the database refuses it, split it instead (bisection)
        until the one outcome it refuses is found, which then fails its job."""
        chunk = chunks[-1]
        try:
            sent = await self._write(conn, chunk)
        except Exception as exc:
            if not refused(exc):
                raise
            chunks.pop()
            if len(chunk) > 1:
                middle = len(chunk) // 2
                chunks += [chunk[middle:], chunk[:middle]]
            else:
                chunks += self._fail_refused(chunk[0], exc)
            return
        chunks.pop()
        await self._skipped(sent)
        self._forget(chunk)

    async def _skipped(self, sent: FinishSent | None) -> None:
        """Say which finishes the database skipped: the lease ran out before they arrived (a
        worker cut off from the database, or frozen) and another worker took the job over."""
        if sent is None:
            return
        _, skipped = await sent.read()
        for job_id in skipped:
            entry = self.unflushed.get(job_id)
            if entry is not None and entry.lost:
                continue  # the heartbeat found it lost, and said so
            log.warning(
                "worker %s: lost the lease of task %s before its outcome was written (another"
                " worker may run it); the outcome is dropped",
                self.worker_id,
                job_id,
                extra={**(job_fields(entry.job) if entry else {"id": job_id}), "event": "lease_lost"},
            )

    def _fail_refused(self, outcome: Outcome, exc: Exception) -> list[list[Outcome]]:
        """The outcome to write instead of ``outcome``, which the database refused: the job
        fails (into the dead letters) with the database's error. When even that is refused,
        nothing is left to write: the error is logged and the lease left to expire."""
        error = database_error(exc)
        if outcome.id in self.refused_ids:
            log.error(
                "worker %s: job %s: the database refused to record its failure too (%s); its"
                " lease will expire and the rescuer will retry or fail it",
                self.worker_id,
                outcome.id,
                error,
            )
            self._forget([outcome])
            return []
        log.warning("worker %s: job %s: outcome refused: %s", self.worker_id, outcome.id, error)
        self.refused_ids.add(outcome.id)
        failed = Finish(
            outcome.id,
            outcome.token,
            TaskState.FAILED,
            error=storable_text(f"the database refused to store the outcome: {error}"),
            dead_reason=DeadLetterReason.REJECTED,
        )
        return [[failed]]

    def _put_back(self, chunks: list[list[Outcome]]) -> int:
        """Keep what is left to write for the next flush, in its order; returns how many."""
        left = [outcome for chunk in reversed(chunks) for outcome in chunk]
        self.outcomes[:0] = left
        return len(left)

    def _forget(self, batch: list[Outcome]) -> None:
        for outcome in batch:
            self.unflushed.pop(outcome.id, None)
            self.refused_ids.discard(outcome.id)

    async def _write(self, conn: AsyncConn, batch: list[Outcome]) -> FinishSent | None:
        """Send ``batch``; the finish's reply (which jobs it skipped) is read by the caller
        once the writes are in (in a pipeline: not before the next statement is sent)."""
        finishes = [o for o in batch if isinstance(o, Finish)]
        retries = [o for o in batch if isinstance(o, RetryLater)]
        releases = [o for o in batch if isinstance(o, Release)]
        sent: list[FinishSent] = []

        async def finish() -> None:
            sent.append(await self.jobs.send_finish(conn, outcomes=finishes))

        writes: list[Callable[[], Awaitable[object]]] = []
        if finishes:
            writes.append(finish)
        if retries:
            writes.append(lambda: self.jobs.retry(conn, outcomes=retries))
        if releases:
            writes.append(lambda: self.jobs.release(conn, outcomes=releases))
        if len(writes) == 1:
            await writes[0]()
        else:
            async with conn.transaction():
                for write in writes:
                    await write()
        return sent[0] if sent else None

    async def final(self, *, forced: bool) -> None:
        """Flush what is left before the worker exits, and stop the loop.

        A write under way (the loop's) is waited for, never cut short: up to
        ``FINAL_WAIT`` seconds. Then new attempts go on while outcomes are left, for
        10 s (1 s when forced).
        """
        try:
            async with asyncio.timeout(FINAL_WAIT):
                await self._lock.acquire()
        except TimeoutError:
            self._closed = True
            log.error(
                "worker %s: a write of %d outcomes did not end within %.0f s; stopping without it",
                self.worker_id,
                self._writing,
                FINAL_WAIT,
            )
            return
        try:
            self._closed = True
            self.outcomes.extend(self.held)  # their threads die with the process, right after
            self.held = []
            deadline = time.monotonic() + (1.0 if forced else 10.0)
            while self.pending and time.monotonic() < deadline:
                await self._flush()
                if self.pending:
                    await asyncio.sleep(0.2)
        finally:
            self._lock.release()
            self.wanted.set()  # the loop sees it is closed and ends
        if self.pending:
            log.error(
                "worker %s: %d outcomes and %d broadcast acks not flushed; leases will expire and"
                " the rescuer will retry the jobs, unacked at-least-once messages run again on restart",
                self.worker_id,
                len(self.outcomes),
                len(self.acks.pending),
            )
