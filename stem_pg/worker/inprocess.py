"""A worker inside a host program's event loop: ``async with app.worker(queues=[...]):``.

An ASGI application (FastAPI, Starlette) runs one in its lifespan: the same worker
engine as ``stem worker run`` (claim, leases, flush, control, maintenance), as tasks of
the running loop. It installs no signal handlers (the host owns them) and leaves the
loop's async pool open (the host's requests use it). Leaving the block stops it the way
SIGTERM stops a worker process (stem_pg.worker.shutdown): no more claims, running tasks
get the grace period, and whatever is unfinished is given back for another worker.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from stem_pg.core.errors import ConfigError
from stem_pg.core.routing_registry import RoutingSubscription
from stem_pg.schema.health import check_migrated
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.worker import Worker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from stem_pg.client.app import Stem

log = logging.getLogger(__name__)

#: Settings that make sense only for a process of its own (it retires to be replaced).
_PROCESS_ONLY = ("max_tasks_per_child", "max_memory_per_child")


class InProcessWorker:
    """``async with`` starts a worker in the running loop and stops it gracefully on exit.

    Entering checks the namespace is migrated (NotMigratedError, DatabaseUnavailable:
    one line, as ``stem worker run``) and returns once the worker is registered and
    listening. ``worker`` is the engine itself (``worker.id``, ``worker.counts``).
    """

    def __init__(self, app: Stem, settings: WorkerSettings) -> None:
        self.app = app
        self.worker = Worker(app, settings)
        self.worker.embedded = True
        self._task: asyncio.Task[None] | None = None
        self._started = self._stopping = False

    @property
    def running(self) -> bool:
        """Whether the worker still runs (a ``shutdown`` command or a retirement ends it early)."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> InProcessWorker:
        if self._task is not None:
            raise RuntimeError("an in-process worker runs once; call app.worker(...) again for another")
        await asyncio.to_thread(check_migrated, self.app.url, self.app.namespace)
        self._task = asyncio.create_task(self.worker.run(), name=f"stem worker {self.worker.id}")
        self._task.add_done_callback(self._ended)
        registered = asyncio.create_task(self.worker.registered.wait())
        try:
            await asyncio.wait([self._task, registered], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while starting: stop what began
            registered.cancel()
            await self._stop()
            raise
        registered.cancel()
        if self._task.done():
            self._task.result()  # a start-up failure raises here
        self._started = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        task = self._task
        self._stopping = True
        if task is None or task.done():
            return
        self.worker.request_stop()
        # The shutdown path must finish even if the host cancels us meanwhile: shielded.
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.worker.request_stop()  # a second request forces: interrupt and give back now
            await task
            raise

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or not self._started:
            return  # a start-up failure is raised by __aenter__
        exc = task.exception()
        if exc is not None:
            log.error("in-process worker %s failed", self.worker.id, exc_info=exc)
        elif not self._stopping:
            why = self.worker.retired or "a shutdown command"
            log.warning("in-process worker %s stopped before its block ended (%s)", self.worker.id, why)


def in_process_worker(
    app: Stem,
    queues: Iterable[str] | None = None,
    concurrency: int = 10,
    broadcasts: Iterable[str] | None = None,
    **options: Any,
) -> InProcessWorker:
    """The worker ``app.worker(...)`` returns: ``queues`` default to STEM_WORKER_QUEUES, then
    the default queue; ``options`` are WorkerSettings fields (``shutdown_grace``,
    ``lease_seconds``, ``poll_interval``, ``prefetch_multiplier``, ``worker_id``...).

    Raises RoutingConfigError for an unknown queue or channel, ConfigError for a bad setting.
    """
    for name in _PROCESS_ONLY:
        if options.get(name) is not None:
            raise ConfigError(f"app.worker(): {name} needs a worker process of its own (stem worker run)")
    subscription = RoutingSubscription.build(
        app.routing,
        queues=tuple(app.config.worker_queues if queues is None else _names(queues)),
        broadcasts=tuple(app.config.worker_broadcasts if broadcasts is None else _names(broadcasts)),
    )
    fields = set(WorkerSettings.__dataclass_fields__) - {"queues", "broadcasts", "concurrency"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"app.worker(): unknown option {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    settings = WorkerSettings(
        queues=subscription.queues, broadcasts=subscription.broadcasts, concurrency=concurrency, **options
    )
    return InProcessWorker(app, settings)


def _names(names: Iterable[str]) -> tuple[str, ...]:
    return (names,) if isinstance(names, str) else tuple(names)
