"""Beat: the scheduler that turns due schedule entries into jobs; run any number of replicas.

Correctness does not depend on who runs: each fire is one autocommit
statement that records (schedule, fire time) under a primary key and enqueues
the job with it, only if the entry is unchanged since it was read, so a fire
happens at most once however many beats race. Leader election is the
optimisation on top: one beat holds the ``beat:leader`` lease in the lock store
and fires; the others renew nothing and take over when the lease expires (a
killed or frozen leader). The fencing token of the lease rides along in every
fire statement, so a leader that froze and woke up after losing the lease
changes nothing. Schedule edits arrive as NOTIFY on ``<ns>:schedules``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg.sql import SQL, Identifier

from stem_pg.client.locks import default_owner
from stem_pg.core.envelope import JobSpec
from stem_pg.core.errors import StemError
from stem_pg.core.logs import bind_process, stem_version
from stem_pg.core.planning import EnqueueRequest
from stem_pg.core.redaction import install_log_redaction, redact
from stem_pg.core.schedules import ScheduleEntry, decide, entry_from_row
from stem_pg.core.signals import BeatFired, Signal
from stem_pg.db.listen import notifications
from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn, ManagedConnection, run_guarded
from stem_pg.db.stores.beat import BeatStore, Fired, Shot
from stem_pg.db.stores.enqueue import AsyncEnqueueStore
from stem_pg.db.stores.locks import AsyncLockStore, LockLease
from stem_pg.db.stores.schedules import ScheduleRow

if TYPE_CHECKING:
    from stem_pg.client.app import Stem
    from stem_pg.config.settings import StemConfig

log = logging.getLogger(__name__)

LEADER_KEY = "beat:leader"
#: Headers every scheduled job carries: which entry and which fire time made it.
SCHEDULE_HEADER = "stem-schedule"
FIRE_TIME_HEADER = "stem-fire-time"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BeatSettings:
    """How a beat runs. A killed or frozen leader is replaced after at most about
    ``lease_seconds`` + ``acquire_interval`` (+ one tick)."""

    beat_id: str = field(default_factory=default_owner)
    lease_seconds: float = 5.0
    acquire_interval: float = 0.5
    max_sleep: float = 5.0
    batch: int = 200
    fire_retention: float = 7 * 86400.0
    prune_interval: float = 600.0

    @property
    def renew_interval(self) -> float:
        return self.lease_seconds / 3


@dataclass
class TickReport:
    """What one ``run_once`` did."""

    due: int = 0
    fired: int = 0
    skipped: int = 0
    errors: int = 0
    lost: int = 0
    next_due: datetime | None = None


class Beat:
    """One beat process's runtime: ``await run()``; ``request_stop()`` stops it."""

    def __init__(
        self,
        app: Stem,
        settings: BeatSettings | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.settings = settings or BeatSettings()
        self.id = self.settings.beat_id
        self.clock = clock
        self.monotonic = monotonic
        self.store = BeatStore(app.queries)
        self.unique_keys = AsyncEnqueueStore(app.queries)  # frees unique keys as an enqueue does
        self.locks = AsyncLockStore(app.queries)
        self.lease: LockLease | None = None
        self._lease_until = 0.0
        self._last_prune = monotonic()
        self._stopping = False

    # -- one step each, for the loops and for tests ------------------------------------

    async def run_once(
        self, conn: AsyncConn, *, now: datetime | None = None, token: int | None = None
    ) -> TickReport:
        """Fire every due entry once (per the misfire policy) as of ``now``.

        ``token`` is the leader lease's fencing token: when given, the fire
        statement changes nothing unless this beat still holds that lease.
        """
        now = now or self.clock()
        report = TickReport()
        due = await self.store.due(conn, now=now, limit=self.settings.batch)
        report.due = len(due)
        shots = [self._shot(row, now) for row in due]
        keys = [s.job.unique_key for s in shots if s.job is not None and s.job.unique_key]
        if keys:
            await self.unique_keys.release_unique(conn, keys=keys)
        if shots:
            fired = await self.store.fire(
                conn, shots=shots, now=now, beat_id=self.id, lock_key=LEADER_KEY, token=token
            )
            report.fired = sum(1 for f in fired if f.fired)
            report.lost = len(shots) - len(fired)
            advanced = {f.name for f in fired}
            report.errors = sum(1 for s in shots if s.error and s.name in advanced)
            report.skipped = len(fired) - report.fired - report.errors
            for shot in shots:
                if shot.error and shot.name in advanced:
                    log.warning("beat %s: schedule %r did not fire: %s", self.id, shot.name, shot.error)
            _log_fires(shots, fired)
            if self.app.signals.beat_fired:
                await _send_fires(self.app.signals.beat_fired, shots, fired)
        report.next_due = await self.store.next_due(conn, now=now)
        return report

    async def lead_once(self, conn: AsyncConn) -> bool:
        """Acquire or renew the leader lease; True while this beat leads."""
        ttl = self.settings.lease_seconds
        sent = self.monotonic()
        if self.lease is None:
            lease = await self.locks.acquire(conn, key=LEADER_KEY, owner=self.id, ttl=ttl)
            if lease is not None:
                log.info("beat %s is the leader now (fencing token %d)", self.id, lease.token)
        else:
            lease = await self.locks.renew(
                conn, key=LEADER_KEY, owner=self.id, token=self.lease.token, ttl=ttl
            )
            if lease is None:
                log.warning("beat %s lost the leader lease (token %d)", self.id, self.lease.token)
        became = lease is not None and self.lease is None
        self.lease = lease
        self._lease_until = sent + ttl if lease is not None else 0.0
        if became and hasattr(self, "_wake"):
            self._wake.set()
        return lease is not None

    def leading(self) -> bool:
        """True while this beat holds a lease that, by its own clock, has not expired."""
        return self.lease is not None and self.monotonic() < self._lease_until

    def _shot(self, row: ScheduleRow, now: datetime) -> Shot:
        due = _due(row)
        try:
            entry = entry_from_row(asdict(row))
            decision = decide(entry.spec, due=due, now=now, misfire=entry.misfire, grace=entry.misfire_grace)
        except (StemError, ValueError, ArithmeticError) as exc:  # a spec broken by hand in SQL
            return _shot(row, False, due, None, error=str(exc))
        if not decision.fire:
            return _shot(row, False, decision.fire_time, decision.next_run_at)
        try:
            job = self._job(entry, decision.fire_time)
        except StemError as exc:  # e.g. the routing file refuses the queue
            return _shot(row, False, decision.fire_time, decision.next_run_at, error=str(exc))
        return _shot(row, True, decision.fire_time, decision.next_run_at, job=job)

    def _job(self, entry: ScheduleEntry, fire_time: datetime) -> JobSpec:
        jitter = random.uniform(0, entry.jitter) if entry.jitter > 0 else None
        request = EnqueueRequest(
            entry.task, entry.kwargs, countdown=jitter, queue=entry.queue, priority=entry.priority
        )
        job = self.app.plan(request)
        headers = {
            **json.loads(job.headers),
            SCHEDULE_HEADER: entry.name,
            FIRE_TIME_HEADER: fire_time.isoformat(),
        }
        # Signed again: the schedule headers are part of what the signature covers.
        job.headers = self.app.planner.sign(job.id, entry.task, entry.kwargs, headers)
        return job

    # -- the process -----------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop()``: lease, listener and tick loops, each on its own connection.

        Log records of this process are redacted from here on (no password in any line).
        """
        install_log_redaction()
        await asyncio.to_thread(self.sync_periodic)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        url = self.app.url
        self._lease_conn = ManagedConnection(url, "beat-lease")
        self._tick_conn = ManagedConnection(url, "beat-tick")
        # Behind a transaction pooler without a direct URL no LISTEN: an edited schedule is
        # read at the next tick (max_sleep) instead of at once.
        listen_url = self.app.backend.listen_url
        self._listen_conn = ManagedConnection(listen_url or url, "beat-listen", self._on_listen_connect)
        loops = [
            asyncio.create_task(self._guarded("lease", self._lease_conn, self._lease_step)),
            asyncio.create_task(self._guarded("tick", self._tick_conn, self._tick_step)),
        ]
        if listen_url is not None:
            loops.append(asyncio.create_task(self._guarded("listener", self._listen_conn, self._listen_step)))
        self._banner()
        if self._stopping:
            self._stop.set()
        await self._stop.wait()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._step_down()
        for managed in (self._lease_conn, self._tick_conn, self._listen_conn):
            await managed.discard()
        log.info("beat %s stopped", self.id)

    def sync_periodic(self) -> None:
        """Put the app's ``@app.periodic`` entries into the schedule store (ScheduleError, one
        line, for a clash with a file's entry of the same name)."""
        entries = self.app.periodic_entries.entries(self.app.registry)
        plan = self.app.schedules.sync_code(entries)
        changed = [f"{c.action}d {c.name}" for c in plan.changes if c.action != "unchanged"]
        if entries or changed:
            log.info(
                "beat %s: %d periodic entries in code%s",
                self.id,
                len(entries),
                "; " * bool(changed) + ", ".join(changed),
            )

    def _banner(self) -> None:
        """The start-up lines: who runs, against which database (password masked) and namespace."""
        bind_process(beat=self.id, namespace=self.app.namespace)
        version = stem_version()
        fields = {"event": "banner", "version": version, "database": redact(self.app.url)}
        log.info(
            "beat %s started on namespace %s\n  stem_pg beat v%s\n  database:  %s\n"
            "  lease:     %ss (leader election; the others stand by)\n  max sleep: %ss",
            self.id,
            self.app.namespace,
            version,
            fields["database"],
            self.settings.lease_seconds,
            self.settings.max_sleep,
            extra=fields,
        )

    def request_stop(self) -> None:
        self._stopping = True
        if hasattr(self, "_stop"):
            self._stop.set()

    async def release_lease(self, conn: AsyncConn) -> None:
        """Hand the leader lease back (at shutdown), so another beat takes over at once."""
        lease, self.lease = self.lease, None
        if lease is not None:
            await self.locks.release(conn, key=LEADER_KEY, owner=self.id, token=lease.token)

    async def _step_down(self) -> None:
        try:
            await self.release_lease(await self._lease_conn.get())
        except CONNECTION_ERRORS as exc:
            log.warning("beat %s: could not release the leader lease: %s", self.id, exc)

    def _guarded(
        self, name: str, managed: ManagedConnection, step: Callable[[AsyncConn], Awaitable[None]]
    ) -> Coroutine[Any, Any, None]:
        return run_guarded(f"beat {self.id}: {name}", managed, step)

    async def _lease_step(self, conn: AsyncConn) -> None:
        leading = await self.lead_once(conn)
        await asyncio.sleep(self.settings.renew_interval if leading else self.settings.acquire_interval)

    async def _on_listen_connect(self, conn: AsyncConn) -> None:
        await conn.execute(SQL("LISTEN {}").format(Identifier(self.app.queries.channels.schedules)))
        self._wake.set()  # anything edited while we were not listening

    async def _listen_step(self, conn: AsyncConn) -> None:
        async for _note in notifications(conn):  # a listener that stops answering raises
            self._wake.set()

    async def _tick_step(self, conn: AsyncConn) -> None:
        if not self.leading() or self.lease is None:
            await self._sleep(self.settings.max_sleep)
            return
        report = await self.run_once(conn, token=self.lease.token)
        if self.monotonic() - self._last_prune >= self.settings.prune_interval:
            self._last_prune = self.monotonic()
            await self.store.prune_fires(conn, keep=self.settings.fire_retention, limit=10_000)
        if report.due >= self.settings.batch:
            return  # more are due: go again at once
        delay = self.settings.max_sleep
        if report.next_due is not None:
            delay = min(delay, (report.next_due - self.clock()).total_seconds())
        # An entry still due after this tick is held by another beat or was edited: do not spin.
        await self._sleep(max(delay, 0.0 if report.fired else 0.2))

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):  # not wait_for: it can drop a cancel on 3.11
                    await self._wake.wait()
        self._wake.clear()


def _due(row: ScheduleRow) -> datetime:
    """The fire time a due entry waits for (beat_due returns only entries that have one)."""
    if row.next_run_at is None:
        raise RuntimeError(f"schedule {row.name!r} was read as due without a next fire time")
    return row.next_run_at


def _shot(
    row: ScheduleRow,
    fire: bool,
    fire_time: datetime,
    next_run_at: datetime | None,
    *,
    job: JobSpec | None = None,
    error: str | None = None,
) -> Shot:
    return Shot(row.name, _due(row), row.version, fire, fire_time, next_run_at, job, error)


def _log_fires(shots: list[Shot], fired: list[Fired]) -> None:
    """One INFO line per entry that fired: schedule, task and the id of the job it enqueued."""
    tasks = {shot.name: shot.job.task for shot in shots if shot.job is not None}
    for done in fired:
        if done.fired:
            task = tasks.get(done.name)
            log.info(
                "schedule %r fired: task %s, job %s",
                done.name,
                task,
                done.task_id,
                extra={"event": "fire", "schedule": done.name, "task": task, "id": done.task_id},
            )


async def _send_fires(signal: Signal[BeatFired], shots: list[Shot], fired: list[Fired]) -> None:
    by_name = {shot.name: shot for shot in shots}
    for done in fired:
        if done.fired:
            shot = by_name[done.name]
            task = shot.job.task if shot.job is not None else None
            await signal.asend(BeatFired(done.name, task, done.task_id, shot.fire_time))


def check_single_database(config: StemConfig) -> None:
    """Beat fires schedule, fire record and job in one statement: every store must be the
    broker's database (``stem_pg.config.settings.check_single_database``)."""
    from stem_pg.config.settings import STORE_URL_VARIABLES
    from stem_pg.config.settings import check_single_database as check

    check(config.broker_url, {var: getattr(config, attr) for attr, var in STORE_URL_VARIABLES.items()})
