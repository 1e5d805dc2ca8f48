"""The worker: claims leased jobs and broadcast messages, runs them, flushes outcomes,
keeps leases alive, and answers the control plane.

Each background loop owns one connection and survives its loss: it logs, reconnects with
backoff and carries on. Outcomes that could not be flushed stay buffered (their leases
still extended) until the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stem_pg.core.control import ShutdownMode
from stem_pg.core.logs import bind_process, current_job
from stem_pg.core.redaction import install_log_redaction
from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn, ManagedConnection, run_guarded
from stem_pg.db.stores.broadcasts import BroadcastStore
from stem_pg.db.stores.control import ControlStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.limits import LimitStore
from stem_pg.db.stores.rows import ClaimedJob, Finish, Outcome, RetryLater
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.db.stores.workflows import WorkflowStore
from stem_pg.worker.broadcasts import BroadcastAcks, BroadcastConsumer
from stem_pg.worker.claimable import ClaimableTasks
from stem_pg.worker.connections import WorkerConnections
from stem_pg.worker.context import Inflight
from stem_pg.worker.control import WorkerControl
from stem_pg.worker.execute import Executor
from stem_pg.worker.flush import OutcomeFlusher
from stem_pg.worker.flush_claim import FlushClaims
from stem_pg.worker.heartbeat import Heartbeat
from stem_pg.worker.hooks import TaskHooks, worker_signal
from stem_pg.worker.leases import LeaseGate, leased
from stem_pg.worker.limited import LimitedClaims, plan_for
from stem_pg.worker.listener import WorkerListener
from stem_pg.worker.logs import Summary, log_outcome
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.outcomes import count_as
from stem_pg.worker.recycle import EXIT_RETIRED, OVERRUN_RETRY_MARGIN, Recycler
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.shutdown import Shutdown
from stem_pg.worker.slots import Slots
from stem_pg.worker.state import WorkerState
from stem_pg.worker.verify import verifier
from stem_pg.worker.workflows import WorkflowTasks

if TYPE_CHECKING:
    from stem_pg.client.app import Stem
    from stem_pg.metrics.worker import WorkerMetrics

log = logging.getLogger(__name__)

#: After this many claimed jobs the maintenance pass runs early: a fast drain piles up
#: dead rows in the jobs table much sooner than the maintenance interval comes round.
MAINTAIN_EVERY_CLAIMED = 20_000


class Worker:
    """One worker process's runtime. ``await run()``; ``request_stop()`` twice forces.

    It composes the parts (executor, flusher, heartbeat, control, broadcasts, maintenance)
    and runs the claim loop; what several parts read lives in one ``WorkerState``. After
    ``run()``, ``exit_code`` and ``abandoned_threads`` tell the process how to end."""

    #: In a host program's loop (stem_pg.worker.inprocess): the loop's async pool stays open.
    embedded = False

    def __init__(self, app: Stem, settings: WorkerSettings, metrics: WorkerMetrics | None = None) -> None:
        self.app = app
        self.registered = asyncio.Event()  # set once registered and listening
        if app.backend.pooled and not app.backend.direct_url:  # its session lock needs a session
            settings = replace(settings, vacuum=False)
        self.settings = settings
        self.id = settings.worker_id
        self.state = WorkerState(settings)
        #: Task name -> handler: what the executor runs and what control reports (a
        #: workflow's task is the handler that replays its runs).
        self.registry = WorkflowTasks(app.registry, app.workflows, app.backend, app.planner)
        self.jobs = JobStore(app.queries, result_ttl=app.result_ttl, pooled=app.backend.pooled)
        self.claimable = ClaimableTasks(app.registry, claim_unregistered=settings.claim_unregistered)
        self.workers = WorkerStore(app.queries)
        plan = plan_for(settings.queues, app.registry, app.routing)
        self.limited = LimitedClaims(self.jobs, LimitStore(app.queries), plan, settings, app.namespace)
        # The claim loop's own handles on the shared dicts (the same objects as the state's).
        self.inflight = self.state.inflight
        self.broadcast_inflight = self.state.broadcast_inflight
        self.counts = self.state.counts
        self.stopped_by_command = False
        #: Why the process retires (stem_pg.worker.recycle), if it does.
        self.retired: str | None = None
        self._stop_requested = False
        self._rotation = 0
        self._claimed_since_maintenance = 0
        self._after_finish = False  # the claim loop was first woken by a finished job
        self._forced = False
        self._grace = settings.shutdown_grace
        self.metrics = metrics  # what --metrics-port serves (stem_pg.metrics.worker), if asked for

    @property
    def exit_code(self) -> int:
        """1 after a forced stop by signal, ``EXIT_RETIRED`` when retired (to be replaced), else 0."""
        if self._forced and not self.stopped_by_command:
            return 1
        return EXIT_RETIRED if self.retired is not None and not self._stop_requested else 0

    @property
    def abandoned_threads(self) -> bool:
        """Whether sync handlers still run in threads the process must not wait for."""
        return self._forced or (hasattr(self, "executor") and self.executor.running_threads > 0)

    # -- lifecycle -----------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop()``; then drain gracefully (or not, when forced). Log
        records of this process are redacted from here on (no password in any line)."""
        install_log_redaction()
        bind_process(worker=self.id, namespace=self.app.namespace)
        self._assemble()
        if not await self._register():
            return
        self.registered.set()
        await worker_signal(self.app.signals.worker_started, self.app.namespace, self.settings)
        self.slots.start()
        claiming = self._guarded("claimer", self.conns.claim, self._claim_once, until_stop=True)
        claimer = asyncio.create_task(claiming, name="claimer")
        loops = [asyncio.create_task(coro, name=name) for name, coro in self._loops().items()]
        settings, ns = self.settings, self.app.namespace
        consumed = ",".join(settings.queues) + "".join(f", broadcast {b}" for b in settings.broadcasts)
        message = "worker %s consuming %s in namespace %s (concurrency %d)"
        log.info(message, self.id, consumed, ns, settings.concurrency)
        await self._stop.wait()
        await worker_signal(self.app.signals.worker_stopping, self.app.namespace, self.settings)
        await self.shutdown.run(claimer, loops)
        await self._close()
        await worker_signal(self.app.signals.worker_stopped, self.app.namespace, self.settings)

    def _assemble(self) -> None:
        """Make the connections (opened on first use) and the parts, inside the running loop.

        Each part gets only its store, the shared ``WorkerState`` and callbacks (none holds the Worker).
        """
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.slots = Slots(self.settings.concurrency)
        url, queries, metrics = self.app.url, self.app.queries, self.metrics
        self.conns = WorkerConnections(
            url,
            direct_url=self.app.backend.direct_url,
            plan_claims=self.jobs.plan_claims,
            listen_connected=self._listen_connected,
            on_lost=self._connection_lost,
            on_reconnect=None if metrics is None else metrics.reconnected,
            mode=self.settings.connections,
        )
        self.control = WorkerControl(
            ControlStore(queries),
            self.state,
            self.registry,
            namespace=self.app.namespace,
            request_stop=self.request_stop,
            interval=self.settings.maintenance_interval,
            signals=self.app.signals,
            limits=self.limited.describe,
        )
        broadcast_store = BroadcastStore(queries)
        acks = BroadcastAcks(broadcast_store, worker_id=self.id)
        self.flusher = OutcomeFlusher(self.jobs, acks, self.conns.flush, worker_id=self.id)
        self.flusher.on_flushed = None if metrics is None else metrics.flushed
        epoch, names = (lambda: self.state.lease_epoch), self.claimable.names
        self.limited.bind(
            free=self._free, wake_self=self._wake.set, start=self._start, tasks=names, lease_epoch=epoch
        )
        self.flush_claims = FlushClaims(self.jobs, self.limited, self.settings, self._claimed, self._wake.set)
        self.flusher.after_write, self.flusher.claim = self.limited.after_flush, self.flush_claims
        self.heartbeat = Heartbeat(self.jobs, self.workers, self.state, unflushed=self.flusher.unflushed)
        self.heartbeat.on_checked = None if metrics is None else metrics.leases_checked
        self._wake_leases = self.heartbeat.wanted
        self.gate = LeaseGate(self.state, wake_leases=self.heartbeat.wanted.set)
        self.recycler = Recycler(
            max_tasks=self.settings.max_tasks_per_child,
            max_memory_kib=self.settings.max_memory_per_child,
            retire=lambda reason: self.retire(reason, warn=False),
        )
        self.executor = Executor(
            self.registry,
            self.state,
            threads=self.settings.concurrency,
            wake_leases=self.heartbeat.wake_threadsafe,
            revoked=self.control.revokes.reason,
            started=self.recycler.task_started,
            overran=self.retire,
            verify=verifier(self.app.planner.signing, self.app.workflows),
            routing=self.app.routing,
            hooks=TaskHooks(self.app.signals, self.app.middleware_chain, self.id),
        )
        self.broadcasts = BroadcastConsumer(
            broadcast_store,
            self.state,
            acks,
            submit=self.slots.submit,
            run=self.executor.run,
            recorded=self.flush_soon,
        )
        self.listener = WorkerListener(
            queries.channels,
            worker_id=self.id,
            queues=self.settings.queues,
            broadcast_channels=self.broadcasts.channels,
            wake=self._wake.set,
            control=self.control,
        )
        self.shutdown = Shutdown(
            self.jobs,
            self.workers,
            self.state,
            self.slots,
            self.flusher,
            self.conns.flush,
            grace=lambda: self._grace,
            forced=lambda: self._forced,
        )
        self.maintenance = Maintenance(
            self.jobs,
            self.settings,
            on_requeued=self._wake.set,
            workers=self.workers,
            on_report=None if metrics is None else metrics.maintained,
            housekeeping=(
                self.control.maintain,
                self.broadcasts.maintain,
                WorkflowStore(queries, retention=self.app.result_ttl).prune,
                self.limited.maintain,
            ),
        )

    async def _listen_connected(self, conn: AsyncConn) -> None:
        await self.listener.on_connect(conn)

    def _connection_lost(self) -> None:
        """Any connection failed: no held job starts until its lease is confirmed again."""
        self.heartbeat.connection_lost()

    def flush_soon(self) -> None:
        """An outcome is buffered: flush it, and claim into the freed slot."""
        self.flusher.wanted.set()
        self._wake.set()

    def request_stop(self, mode: ShutdownMode | None = None) -> None:
        """Signals: the first call stops claiming and drains, a second one stops now.

        A control command names the ``mode``: ``warm`` drains like a first signal,
        ``soft`` interrupts running tasks at once (they run again elsewhere), ``hard``
        stops at once like a second signal.
        """
        if mode is not None:
            self.stopped_by_command = True
        if mode == "soft":
            self._grace = 0.0
        if mode == "hard" or (mode is None and self._stop_requested):
            self._forced = True
            log.warning("worker %s: forced shutdown", self.id)
        else:
            log.info("worker %s: shutting down (%s)", self.id, mode or "gracefully; signal again to force")
        self._stop_requested = True
        self.state.stopping = True
        if hasattr(self, "_stop"):
            self._stop.set()
            self._wake.set()

    def retire(self, reason: str, *, warn: bool = True) -> None:
        """Stop gracefully, to exit with ``EXIT_RETIRED`` and be replaced (stem_pg.worker.recycle);
        nothing when already stopping. ``warn``: a warning (an overrun), else routine (recycling)."""
        if self.state.stopping:
            return
        self.retired = reason
        level = logging.WARNING if warn else logging.INFO
        log.log(level, "worker %s: retiring (%s); a fresh process takes its place", self.id, reason)
        self.state.stopping = True
        if hasattr(self, "_stop"):
            self._stop.set()
            self._wake.set()

    def _loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The loops besides the claim loop, by name (their task's name, which a log line may quote)."""
        conns, guarded = self.conns, self._guarded
        loops = {
            "flusher": self.flusher.loop(),
            "control": guarded("control", conns.control, self.control.run_once),
            "leases": guarded("leases", conns.house, self.heartbeat.run_once),
            "maintenance": guarded(
                "maintenance", conns.maintenance, self.maintenance.run_when_due, until_stop=True
            ),
        }
        if conns.listen is not None:  # else behind a pooler, polling (WorkerConnections)
            loops["listener"] = guarded("listener", conns.listen, self.listener.run_once)
        if self.settings.summary_interval > 0:
            loops["summary"] = Summary(self.counts, self.id, self.settings.summary_interval).loop()
        if self.metrics is not None:
            loops["metrics"] = self.metrics.loop(self.inflight.values)
        return loops

    async def _register(self) -> bool:
        while not self.state.stopping:
            try:
                conn = await self.conns.house.get()
                await self.control.start(conn)  # the command cursor, before we listen
                if self.conns.listen is not None:
                    await self.conns.listen.get()  # registered means listening: commands reach us
                await self.workers.register(
                    conn,
                    worker_id=self.id,
                    queues=self.settings.queues,
                    concurrency=self.settings.concurrency,
                    tasks=self.app.planner.task_options(),
                    beat=self.state.beat(),
                    connections=len(self.conns.all),
                )
                await self.limited.register(conn)
                await self.control.sync(conn)  # revokes and pauses before the first claim
                await self.broadcasts.start(conn)
                await self.claimable.report_waiting(
                    conn, self.jobs, worker_id=self.id, queues=self.settings.queues
                )
                self.state.last_heartbeat_at = datetime.now(UTC)
                return True
            except CONNECTION_ERRORS as exc:
                await self.conns.house.recover(exc)  # kept if only cancelled; else a reconnect
        await self.conns.discard()
        return False

    async def _close(self) -> None:
        await self.conns.discard()
        self.executor.shutdown()
        if not self.embedded:  # else the host's: it still uses it
            await self.app.close_async_pool()  # opened in this loop by handlers (workflows, aenqueue)
        log.info("worker %s stopped", self.id)

    # -- loops ---------------------------------------------------------------------

    def _guarded(
        self,
        name: str,
        managed: ManagedConnection,
        once: Callable[[AsyncConn], Awaitable[None]],
        *,
        until_stop: bool = False,
    ) -> Coroutine[Any, Any, None]:
        """``once`` in a reconnecting loop until cancelled (or until the worker stops)."""
        state = self.state
        until = (lambda: state.stopping) if until_stop else (lambda: False)
        return run_guarded(f"worker {self.id}: {name}", managed, once, until=until)

    async def _claim_once(self, conn: AsyncConn) -> None:
        poll = self.limited.timeout(self.settings.poll_interval * random.uniform(0.8, 1.2))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll):  # no extra task, unlike wait_for: a faster wake-up
                await self._wake.wait()
        self._wake.clear()
        after_finish, self._after_finish = self._after_finish, False
        self.limited.woke()
        if (free := self._free()) <= 0:
            return
        free -= await self.broadcasts.claim(conn, free)
        if free <= 0 or (after_finish and self.slots.waiting and free < self.settings.capacity // 2):
            return  # woken by finishes while claimed jobs wait: claim when half is free (batches)
        token = str(uuid.uuid4())
        sent, epoch = time.monotonic(), self.state.lease_epoch  # when the leases begin, at the latest
        queues = self.settings.queues
        self._rotation = (self._rotation + 1) % len(queues)
        for queue in queues[self._rotation :] + queues[: self._rotation]:
            began = time.perf_counter()
            jobs = await self.limited.claim(
                conn, queue=queue, limit=free, token=token, tasks=self.claimable.names()
            )
            for job in jobs:
                self._start(job, token, sent, epoch)
            self._claimed(queue, len(jobs), time.perf_counter() - began)
            free -= len(jobs)
            if free <= 0:
                return
        if self.jobs.sizer.more:  # a claim held back by its payloads' size: the rest now
            self._wake.set()

    def _claimed(self, queue: str, count: int, seconds: float) -> None:
        """A claim (the claim loop's, or the flush's) leased ``count`` jobs of ``queue``."""
        if self.metrics is not None:
            self.metrics.claim_ran(queue, count, seconds)
        self._claimed_since_maintenance += count
        if self._claimed_since_maintenance >= MAINTAIN_EVERY_CLAIMED:
            self._claimed_since_maintenance = 0
            self.maintenance.soon.set()

    def _free(self) -> int:
        """The jobs a claim may take now (none once stopping, nor slots a flush's claim took)."""
        used = len(self.inflight) + len(self.broadcast_inflight) + self.flush_claims.reserved
        return 0 if self.state.stopping else self.settings.capacity - used

    def _start(self, job: ClaimedJob, token: str, sent: float, epoch: int) -> None:
        entry = Inflight(job, token, float(job.visibility_timeout or self.settings.lease_seconds))
        leased(entry, sent=sent, epoch=epoch, seconds=entry.lease_seconds)
        self.inflight[job.id] = entry
        self.slots.submit(entry, self._run)
        if entry.lease_seconds < self.settings.lease_seconds:
            self._wake_leases.set()  # the heartbeat may be sleeping for a longer lease

    async def _run(self, entry: Inflight) -> None:
        # Never start a job on a lease that is lost, running out or not confirmed.
        context = current_job.set(entry.job)  # log lines of its handler name the job
        try:
            refused = None if self.gate.startable(entry) else await self.gate.admit(entry)
            self._record(entry, refused if refused is not None else await self.executor.run(entry))
        finally:
            current_job.reset(context)

    def _record(self, entry: Inflight, outcome: Outcome) -> None:
        entry.drop_args()  # held until the flush otherwise: a payload per finished job
        self.inflight.pop(entry.job.id, None)
        if entry.started:
            self.recycler.task_ended()
        if entry.lost:
            return
        if entry.interrupted and not isinstance(outcome, Finish):
            self.shutdown.keep(entry)  # stopped on the way out: given back with the others
            return
        if entry.thread_running and isinstance(outcome, RetryLater):
            # The attempt still runs in a thread no one can stop: its retry is written as
            # this process exits (the thread dies with it), and the lease is held till then.
            self.retire(f"task {entry.job.id} is retried while its thread still runs")
            self.flusher.hold(entry, replace(outcome, delay=max(outcome.delay, OVERRUN_RETRY_MARGIN)))
        else:
            self.flusher.add(entry, outcome)
        log_outcome(entry, outcome)
        slot_freed = self.limited.done(entry.job)
        self.counts[kind := count_as(outcome)] += 1
        if self.metrics is not None:
            self.metrics.job_ended(entry, kind)
        if slot_freed:  # other workers (and this one's claim in the flush) wait for its write
            self.flusher.hurry()
        elif not (self.flush_claims.enabled and self.flusher.outcomes):
            self._after_finish |= not self._wake.is_set()  # the first reason since the claim
            self._wake.set()  # else the flush of its outcome claims (or wakes the claim loop)
