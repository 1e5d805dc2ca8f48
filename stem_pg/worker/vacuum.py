"""The maintenance pass's vacuum of the jobs table: the policy (stem_pg/core/vacuum.py)
decides, this runs its queries and tells the operator who holds the xmin horizon."""

from __future__ import annotations

import logging

from stem_pg.core.vacuum import VacuumPolicy
from stem_pg.db.stores.vacuum import AsyncConn, VacuumStore

log = logging.getLogger(__name__)


class JobsVacuum:
    """One worker's vacuums of its namespace's jobs table.

    Every claimed job leaves a dead entry at the front of the claim index, and every claim
    steps over all of them until a vacuum removes them: claims slow down with each job
    drained since the last one (twice as slow after 800k jobs). Autovacuum looks at a table
    at most once a minute, too seldom for a queue that drains tens of thousands of jobs a
    second. The statistics lag by about a second.

    Workers share the table: one at a time vacuums (VacuumStore.vacuum's advisory lock), and
    each backs off while a vacuum (anyone's) already ran under the xmin horizon that still
    holds: another one would remove nothing (stem_pg/core/vacuum.py).
    """

    def __init__(self, store: VacuumStore, policy: VacuumPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or VacuumPolicy()
        self.table = f"{store.q.namespace}.jobs"

    async def run_once(self, conn: AsyncConn) -> int:
        """Vacuum if due and worth it; returns the dead rows the table had (0: no vacuum)."""
        before = await self.store.dead_rows(conn)
        if not self.policy.due(before):
            return 0
        holder = await self.store.horizon(conn)
        was_held = self.policy.held_by
        decision = self.policy.decide(before, holder)
        if decision.warning:
            log.warning("vacuum of %s held back: %s", self.table, decision.warning)
        if not decision.vacuum or not await self.store.vacuum(conn):
            return 0
        after = await self.store.dead_rows(conn)
        removed = self.policy.vacuumed(before, after, holder)
        if was_held is not None:
            log.info("vacuumed %s again: the xmin horizon moved (%d dead rows removed)", self.table, removed)
        else:
            log.debug("vacuumed %s: %d dead rows, %d removed", self.table, before.dead, removed)
        return before.dead
