"""How a worker stops on purpose, whatever asked it to (SIGTERM/SIGINT, a second signal, a
``shutdown`` command, its supervisor): nothing it holds is left ``running`` behind it.

1. It stops claiming, and hands back at once the jobs it leased but no runner started.
2. Running jobs get the grace period to finish (none when forced or told ``soft``).
3. What still runs is interrupted; outcomes that did come in are flushed, the write
   under way waited for.
4. Its loops are cancelled and waited for, within a bound: one that does not end (a cancel
   lost on the way, see ``cancel_within``) is named in the log and left behind.
5. Every job it still holds is given back in one statement (``job_give_back``): an
   interrupted one for a retry (the attempt counts), an unstarted one as it was.
6. It marks itself stopped in the workers table.

Steps 5 and 6 open a fresh connection when theirs is gone (the heartbeat's, say).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from stem_pg.db.managed import CONNECTION_ERRORS, AsyncConn, ManagedConnection
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.workers import WorkerStore
from stem_pg.worker.context import Inflight
from stem_pg.worker.flush import OutcomeFlusher
from stem_pg.worker.slots import Slots
from stem_pg.worker.state import WorkerState

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long the claim loop may take to end by itself (a claim under way lands first).
CLAIMER_WAIT = 5.0
#: How long the give-back and the stopped mark keep trying (reconnecting) before giving up.
LAST_WRITES_WAIT = 5.0
#: How long cancelled loops may take to end before the way out goes on without them.
LOOPS_WAIT = 2.0


async def cancel_within(tasks: Sequence[asyncio.Task[Any]], seconds: float, who: str) -> list[str]:
    """Cancel ``tasks`` and wait up to ``seconds`` for them to end; return the names of those
    that did not (logged, as ``who``, on one line). A cancel can be lost (one landing as the
    task's own wait completes, as Python 3.11's ``wait_for`` could drop it, or code that
    swallows it): the worker must still get out rather than wait for the task forever."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    stuck = sorted(task.get_name() for task in pending)
    if stuck:
        log.error(
            "%s: %s still running %g s after being cancelled; going on without %s",
            who,
            ", ".join(stuck),
            seconds,
            "it" if len(stuck) == 1 else "them",
        )
    return stuck


class Shutdown:
    """The way out of one worker: ``run()`` once the worker is stopping.

    ``grace`` and ``forced`` are read as it goes: a second signal or a ``soft``
    command during the grace period cuts it short.
    """

    def __init__(
        self,
        jobs: JobStore,
        workers: WorkerStore,
        state: WorkerState,
        slots: Slots,
        flusher: OutcomeFlusher,
        managed: ManagedConnection,
        *,
        grace: Callable[[], float],
        forced: Callable[[], bool],
    ) -> None:
        self.jobs = jobs
        self.workers = workers
        self.state = state
        self.slots = slots
        self.flusher = flusher
        self.managed = managed
        self.grace = grace
        self.forced = forced
        #: How long the cancelled loops get to end (step 4).
        self.loops_wait = LOOPS_WAIT
        #: Names of the loops that did not end when cancelled: the process exits without them.
        self.stuck: list[str] = []
        #: Interrupted jobs whose runner ended: given back instead of flushed.
        self._interrupted: dict[str, Inflight] = {}

    def keep(self, entry: Inflight) -> None:
        """An interrupted job ended without a final outcome: give it back at the end."""
        self._interrupted[entry.job.id] = entry

    async def run(self, claimer: asyncio.Task[None], loops: list[asyncio.Task[None]]) -> None:
        """Steps 1 to 6 (see the module); ``loops`` are cancelled once the outcomes are written."""
        await asyncio.wait([claimer], timeout=CLAIMER_WAIT)
        # Work no runner started is released at once (each run sees the worker stopping).
        await asyncio.gather(*(run(entry) for entry, run in self.slots.take_waiting()))
        started = time.monotonic()
        while self._held() and not self.forced() and time.monotonic() < started + self.grace():
            await asyncio.sleep(0.05)
        self._interrupt()
        await self.slots.wait_idle()
        await self.slots.close()
        await self.flusher.final(forced=self.forced())
        self.stuck = await cancel_within([claimer, *loops], self.loops_wait, f"worker {self.state.id}")
        await self._give_back()
        await self._last_write("mark itself stopped", self._mark_stopped)

    async def _mark_stopped(self, conn: AsyncConn) -> None:
        await self.workers.stopped(conn, beat=self.state.beat("stopped"))

    def _held(self) -> list[Inflight]:
        return [*self.state.inflight.values(), *self.state.broadcast_inflight.values()]

    def _interrupt(self) -> None:
        """Stop what still runs: its outcome (unless it is final) is to be given back."""
        for entry in self.state.inflight.values():
            entry.interrupted = True
        running = [entry for entry in self._held() if entry.task is not None]
        if running:
            log.warning(
                "worker %s: interrupting %d running tasks (%s); they will run again",
                self.state.id,
                len(running),
                "forced" if self.forced() else f"grace of {self.grace():g} s over",
            )
        for entry in running:
            assert entry.task is not None
            entry.task.cancel()

    async def _give_back(self) -> None:
        held = {e.job.id: e for e in self.state.inflight.values() if not e.lost}
        held.update(self._interrupted)
        if not held:
            return
        entries = list(held.values())
        error = f"worker {self.state.id} stopped while the task was running"
        given = await self._last_write(
            f"give back {len(entries)} jobs (their leases will expire and the rescuer will retry them)",
            lambda conn: self.jobs.give_back(
                conn,
                ids=[e.job.id for e in entries],
                tokens=[e.token for e in entries],
                started=[e.started for e in entries],
                error=error,
            ),
        )
        if given is not None:
            log.info(
                "worker %s: gave back %d interrupted jobs for a retry and %d it never started",
                self.state.id,
                given.retried,
                given.released,
            )

    async def _last_write(self, what: str, call: Callable[[AsyncConn], Awaitable[T]]) -> T | None:
        """``call`` on a working connection: a fresh one if the one at hand is gone."""
        deadline = time.monotonic() + LAST_WRITES_WAIT
        while True:
            try:
                return await call(await self.managed.get())
            except CONNECTION_ERRORS as exc:
                if time.monotonic() >= deadline:
                    await self.managed.discard()
                    log.error("worker %s: could not %s: %s", self.state.id, what, str(exc).strip())
                    return None
                await self.managed.lost(exc)  # a fresh connection next, after a backoff
            except Exception:
                log.exception("worker %s: could not %s", self.state.id, what)
                return None
