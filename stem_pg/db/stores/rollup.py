"""The per-minute rollup of finished jobs (sql/rollup.sql) that the dashboard's chart reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries

AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class RolledUp:
    minutes: int  # (minute, queue) rows added to result_minutes
    results: int  # the results they count
    rolled_to: datetime | None  # the new watermark (None: it did not move)
    pruned: int = 0  # rows older than a day removed


class RollupStore:
    """Rolls one namespace's results up into ``result_minutes``, on a connection the caller
    owns (in autocommit mode: the pass is one transaction of its own)."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries
        self._schema = {"schema": queries.namespace}

    async def roll_up(self, conn: AsyncConn) -> RolledUp | None:
        """Roll up the complete minutes not yet rolled up and prune those older than a day, in
        one transaction; None when another worker is at it."""
        async with conn.transaction():
            locked = await (await conn.execute(self.q["rollup_lock"], self._schema)).fetchone()
            if not locked or not locked[0]:
                return None
            async with conn.cursor(row_factory=class_row(RolledUp)) as cur:
                await cur.execute(self.q["rollup_results"])
                done = await cur.fetchone()
            pruned = (await conn.execute(self.q["rollup_prune"])).rowcount
        if done is None:  # the query returns one row
            return RolledUp(0, 0, None, pruned)
        return RolledUp(done.minutes, done.results, done.rolled_to, pruned)
