"""What an app declares for the processes that run it: ``@app.periodic`` entries (beat syncs
them) and ``app.worker()``, a worker inside the app's own event loop. A base of ``Stem``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from stem_pg.client.periodic import PeriodicEntries

if TYPE_CHECKING:
    from stem_pg.worker.inprocess import InProcessWorker

F = TypeVar("F", bound=Callable[..., Any])


class RuntimeFacade:
    """``app.periodic(...)`` and ``app.worker(...)`` of the Stem facade."""

    @functools.cached_property
    def periodic_entries(self) -> PeriodicEntries:
        """What ``@app.periodic`` declared (beat syncs it into the schedule store at start-up)."""
        return PeriodicEntries()

    def periodic(
        self, *, cron: str | None = None, every: str | float | timedelta | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Fire the decorated task on a schedule: ``@app.periodic(cron="0 2 * * *",
        timezone="Europe/Paris")`` or ``every="30s"``, above or below ``@app.task``. Options
        as a schedule file's entry: ``name`` (default: the task's), ``args`` (positional),
        ``kwargs``, ``queue``, ``priority``, ``jitter``, ``misfire``, ``misfire_grace``,
        ``expires_at``, ``enabled``, ``description``; ``spec=`` for the other kinds. Raises
        ScheduleError, naming the entry and the key, for a bad spec or option.
        """
        return self.periodic_entries.decorator(cron=cron, every=every, **options)

    def worker(
        self, *, queues: Iterable[str] | None = None, concurrency: int = 10, **options: Any
    ) -> InProcessWorker:
        """A worker in this event loop: ``async with app.worker(queues=["default"]):`` (an ASGI
        lifespan). ``options``: WorkerSettings fields (``shutdown_grace``, ``poll_interval``...).

        The client's one import of the worker package, made here on use
        (stem_pg.worker.inprocess); raises ConfigError / RoutingConfigError when invalid.
        """
        from stem_pg.worker.inprocess import in_process_worker

        return in_process_worker(self, queues, concurrency, **options)  # type: ignore[arg-type]
