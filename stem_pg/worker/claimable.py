"""Deploy-safe claiming: which task names a worker claims, and what it leaves to others.

By default a worker claims only jobs of the tasks it registers, so during a rolling deploy a
worker of the older release leaves a task only the newer release has to a newer worker instead
of dead-lettering it (``unregistered_task``). ``claim_unregistered`` restores the catch-all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stem_pg.core.tasks import TaskRegistry
from stem_pg.db.managed import AsyncConn
from stem_pg.db.stores.jobs import JobStore

log = logging.getLogger(__name__)

#: Task names the start-up line spells out; the rest are counted.
NAMED = 5


class ClaimableTasks:
    """The task names a worker's claim asks for (None: any), kept in step with the registry.

    The registry only grows (a task is never unregistered), so its size tells when to rebuild.
    """

    def __init__(self, registry: TaskRegistry, *, claim_unregistered: bool) -> None:
        self.registry = registry
        self.claim_unregistered = claim_unregistered
        self._names: list[str] = []
        self._size = -1

    def names(self) -> list[str] | None:
        if self.claim_unregistered:
            return None
        if len(self.registry) != self._size:
            self._names = [definition.name for definition in self.registry]
            self._size = len(self._names)
        return self._names

    async def report_waiting(
        self, conn: AsyncConn, store: JobStore, *, worker_id: str, queues: Sequence[str]
    ) -> None:
        """Log, once at start, the jobs waiting on ``queues`` this worker will never claim, so a
        task no worker registers is seen rather than silently stuck."""
        names = self.names()
        if names is None:
            return
        waiting = await store.waiting_unregistered(conn, queues=queues, tasks=names)
        if not waiting:
            return
        total = sum(count for _, count in waiting)
        shown = ", ".join(f"{task} ({count})" for task, count in waiting[:NAMED])
        more = f" and {len(waiting) - NAMED} more tasks" if len(waiting) > NAMED else ""
        log.warning(
            "worker %s: %d jobs wait for tasks this worker does not register: %s%s"
            " (left for a worker that does; `stem tasks check` lists them)",
            worker_id,
            total,
            shown,
            more,
        )
