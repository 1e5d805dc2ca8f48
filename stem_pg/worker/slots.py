"""The worker's concurrency slots: a fixed set of runner tasks that take started work
in FIFO order.

A task per job would cost an asyncio Task, a pass through the event loop and a
semaphore round for every job. Runners instead take jobs off one queue, and
handlers that finish without suspending run back to back in one pass. Whenever a
runner takes a job while others wait, it wakes one idle runner, so a handler that
suspends never holds up the jobs behind it while a slot is free.

Cancelling one job (revoke with terminate, a lost lease, shutdown) cancels the
runner while it is suspended inside that job: the job's own code turns the
``CancelledError`` into its outcome, and the runner goes on with the next job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from stem_pg.worker.context import Inflight

#: Runs one entry to its recorded outcome; a CancelledError meant for it is handled inside.
Run = Callable[[Inflight], Coroutine[Any, Any, None]]

log = logging.getLogger(__name__)


class Slots:
    """``size`` runners. ``start()`` inside the event loop, ``submit()`` work, ``close()``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ready: deque[tuple[Inflight, Run]] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0  # runners woken that have not taken work yet
        self._busy = 0
        self._drained: list[asyncio.Future[None]] = []
        self._runners: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._runners = [asyncio.create_task(self._runner()) for _ in range(self.size)]

    def submit(self, entry: Inflight, run: Run) -> None:
        """Run ``entry`` on the next free runner."""
        self._ready.append((entry, run))
        self._wake_one()

    @property
    def waiting(self) -> int:
        """Work submitted that no runner has started yet."""
        return len(self._ready)

    def take_waiting(self) -> list[tuple[Inflight, Run]]:
        """Remove and return the work no runner has started."""
        waiting = list(self._ready)
        self._ready.clear()
        return waiting

    async def wait_idle(self) -> None:
        """Until no runner is running work."""
        if self._busy:
            waiter = asyncio.get_running_loop().create_future()
            self._drained.append(waiter)
            await waiter

    async def close(self) -> None:
        """Stop the runners (call once no work is running: idle runners end at their wait)."""
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners = []

    def _wake_one(self) -> None:
        if not self._ready or self._waking:
            return
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                return

    async def _runner(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                self._waking -= 1
                continue
            entry, run = self._ready.popleft()
            self._wake_one()  # the work behind this one must not wait for it
            self._busy += 1
            entry.task = task
            try:
                await run(entry)
            except Exception:  # a bug in stem_pg: keep the slot
                log.exception("internal error running task %s", entry.job.id)
            finally:
                entry.task = None
                self._busy -= 1
                # A cancel meant for this job ends with it, even one its handler swallowed.
                while task.uncancel():
                    pass
                if not self._busy:
                    for waiter in self._drained:
                        if not waiter.done():
                            waiter.set_result(None)
                    self._drained.clear()
