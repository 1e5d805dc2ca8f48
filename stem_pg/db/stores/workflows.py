"""Retention of canvases and workflow runs (``sql/canvas.sql``, ``sql/workflows.sql``)."""

from __future__ import annotations

from stem_pg.db.queries import Queries
from stem_pg.db.stores.jobs import AsyncConn


class WorkflowStore:
    """Pruning, run by every worker's maintenance at the results' pace."""

    def __init__(self, queries: Queries, *, retention: float) -> None:
        self.q = queries
        self.retention = retention

    async def prune(self, conn: AsyncConn, *, limit: int = 1000) -> int:
        """Delete ended canvases past their result ttl and ended runs older than the retention."""
        canvases = await conn.execute(self.q["canvas_prune"], {"limit": limit})
        runs = await conn.execute(self.q["wf_run_prune"], {"older_than": self.retention, "limit": limit})
        return canvases.rowcount + runs.rowcount
