"""The doctor store: what ``stem doctor`` reads besides the xmin horizon (VacuumStore's)."""

from __future__ import annotations

from psycopg.rows import class_row

from stem_pg.core.doctor import IndexStats, JobsTable, ServerStats
from stem_pg.db.queries import Queries
from stem_pg.db.stores.vacuum import AsyncConn


class DoctorStore:
    """Statistics of one namespace's tables and indexes, and of the server."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries
        self._schema = {"schema": queries.namespace}

    async def jobs_table(self, conn: AsyncConn) -> JobsTable | None:
        """The jobs table's statistics (None: the statistics do not list it)."""
        async with conn.cursor(row_factory=class_row(JobsTable)) as cur:
            await cur.execute(self.q["doctor_jobs_table"], self._schema)
            return await cur.fetchone()

    async def indexes(self, conn: AsyncConn) -> list[IndexStats]:
        """Every index of the namespace's tables."""
        async with conn.cursor(row_factory=class_row(IndexStats)) as cur:
            await cur.execute(self.q["doctor_indexes"], self._schema)
            return await cur.fetchall()

    async def live_workers(self, conn: AsyncConn, *, stale_after: float) -> tuple[int, int]:
        """Worker processes of the namespace that run (a heartbeat within ``stale_after`` s),
        and the connections they may hold between them."""
        cur = await conn.execute(self.q["doctor_live_workers"], {"stale_after": stale_after})
        row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def server(self, conn: AsyncConn) -> ServerStats:
        """The NOTIFY queue's usage and the connections in use."""
        async with conn.cursor(row_factory=class_row(ServerStats)) as cur:
            await cur.execute(self.q["doctor_server"])
            row = await cur.fetchone()
            assert row is not None  # an aggregate-free SELECT without FROM returns one row
            return row
