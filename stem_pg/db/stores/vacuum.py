"""The vacuum store: the jobs table's dead rows, who holds the xmin horizon, and the VACUUM itself."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.vacuum import DeadRows, HorizonHolder
from stem_pg.db.queries import Queries

AsyncConn = psycopg.AsyncConnection[TupleRow]


class VacuumStore:
    """Vacuum queries of one namespace's jobs table, run on a connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries
        self._schema = {"schema": queries.namespace}

    async def dead_rows(self, conn: AsyncConn) -> DeadRows:
        """The table's statistics; a table the statistics do not list yet counts as clean."""
        async with conn.cursor(row_factory=class_row(DeadRows)) as cur:
            await cur.execute(self.q["vacuum_dead_rows"], self._schema)
            return await cur.fetchone() or DeadRows(0, 0, may_vacuum=False, last_vacuum=None)

    async def horizon(self, conn: AsyncConn) -> HorizonHolder | None:
        """The oldest snapshot or transaction other than ours that VACUUM must respect
        (None: there is none, a vacuum can remove every dead row)."""
        async with conn.cursor(row_factory=class_row(HorizonHolder)) as cur:
            await cur.execute(self.q["vacuum_horizon"], {"limit": 1})
            return await cur.fetchone()

    async def holders(self, conn: AsyncConn) -> list[HorizonHolder]:
        """Every snapshot or transaction id other than ours that holds the horizon back, the
        oldest first (a session holding both a snapshot and a transaction id is listed twice)."""
        async with conn.cursor(row_factory=class_row(HorizonHolder)) as cur:
            await cur.execute(self.q["vacuum_horizon"], {"limit": None})
            return await cur.fetchall()

    async def vacuum(self, conn: AsyncConn) -> bool:
        """VACUUM the jobs table unless another worker is at it (then False). A
        statement_timeout of the role or database does not cut it short."""
        locked = await (await conn.execute(self.q["vacuum_lock"], self._schema)).fetchone()
        if not locked or not locked[0]:
            return False
        timeout: str | None = None  # the session's own, once it is lifted
        try:
            untimed = await (await conn.execute(self.q["vacuum_untimed"])).fetchone()
            timeout = untimed[0] if untimed else None
            await conn.execute(self.q["vacuum_jobs"], prepare=False)
        finally:
            await conn.execute(self.q["vacuum_unlock"], {**self._schema, "statement_timeout": timeout})
        return True
