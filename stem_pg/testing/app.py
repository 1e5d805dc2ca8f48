"""``app.testing``: the helpers of stem_pg.testing bound to one app."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from stem_pg.testing.assertions import EnqueuedJob, assert_enqueued, assert_not_enqueued, enqueued_jobs
from stem_pg.testing.drain import JobOutcome, arun_until_idle, run_until_idle
from stem_pg.testing.eager import EagerMode

if TYPE_CHECKING:
    from stem_pg.client.app import Stem


class AppTesting:
    """What ``app.testing`` returns: ``eager()``, ``run_until_idle()``, ``enqueued_jobs()``,
    ``assert_enqueued()`` and their twins, each for this app."""

    def __init__(self, app: Stem) -> None:
        self.app = app

    def eager(self, *, propagate: bool = False) -> EagerMode:
        """``with app.testing.eager():`` runs tasks inline at enqueue (stem_pg.testing.eager)."""
        return EagerMode(self.app, propagate=propagate)

    def run_until_idle(self, queues: Iterable[str] | str | None = None, **options: Any) -> list[JobOutcome]:
        """Drain the app's namespace in this process (stem_pg.testing.drain.run_until_idle)."""
        return run_until_idle(self.app, queues, **options)

    async def arun_until_idle(
        self, queues: Iterable[str] | str | None = None, **options: Any
    ) -> list[JobOutcome]:
        return await arun_until_idle(self.app, queues, **options)

    def enqueued_jobs(self, task: object = None, *, queue: str | None = None) -> list[EnqueuedJob]:
        return enqueued_jobs(self.app, task, queue=queue)

    def assert_enqueued(
        self,
        task: object,
        *,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        count: int | None = None,
    ) -> list[EnqueuedJob]:
        return assert_enqueued(task, kwargs=kwargs, queue=queue, priority=priority, count=count, app=self.app)

    def assert_not_enqueued(
        self,
        task: object,
        *,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
    ) -> None:
        assert_not_enqueued(task, kwargs=kwargs, queue=queue, priority=priority, app=self.app)
