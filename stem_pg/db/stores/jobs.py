"""The job store: the queue engine's SQL, one async method per named query."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow, args_row, class_row

from stem_pg.db.queries import Queries
from stem_pg.db.stores.rows import ClaimedJob, Finish, Release, RescueCount, RetryLater

AsyncConn = psycopg.AsyncConnection[TupleRow]

#: The jobs table is vacuumed once its dead rows reach this many plus VACUUM_SCALE x its live rows.
VACUUM_BASE = 20_000
VACUUM_SCALE = 0.1


class JobStore:
    """Queue-engine queries of one namespace, run on a connection the caller owns."""

    def __init__(self, queries: Queries, *, result_ttl: float) -> None:
        self.q = queries
        self.result_ttl = result_ttl

    async def plan_claims(self, conn: AsyncConn) -> None:
        """Make ``conn``, a claim connection, plan ``job_claim`` as a walk of the claim
        index whatever the table's statistics say (``job_claim_planner``)."""
        await conn.execute(self.q["job_claim_planner"])

    async def claim(
        self,
        conn: AsyncConn,
        *,
        queue: str,
        limit: int,
        worker_id: str,
        token: str,
        lease_seconds: float,
    ) -> list[ClaimedJob]:
        # args_row: the RETURNING columns are ClaimedJob's fields in order (no dict per row).
        async with conn.cursor(row_factory=args_row(ClaimedJob)) as cur:
            await cur.execute(
                self.q["job_claim"],
                {
                    "queue": queue,
                    "limit": limit,
                    "worker_id": worker_id,
                    "token": token,
                    "lease_seconds": lease_seconds,
                },
            )
            return await cur.fetchall()

    async def finish(self, conn: AsyncConn, *, outcomes: Sequence[Finish]) -> int:
        params: dict[str, Any] = {
            # A Finish is a tuple in job_finish's row order: it serialises as that array.
            "outcomes": json.dumps(outcomes, separators=(",", ":")),
            "result_ttl": self.result_ttl,
            "channel": self.q.channels.done,
        }
        cur = await conn.execute(self.q["job_finish"], params)
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def retry(self, conn: AsyncConn, *, outcomes: Sequence[RetryLater]) -> None:
        await conn.execute(
            self.q["job_retry"],
            {
                "id": [o.id for o in outcomes],
                "token": [o.token for o in outcomes],
                "delay": [o.delay for o in outcomes],
                "error": [o.error for o in outcomes],
            },
        )

    async def release(self, conn: AsyncConn, *, outcomes: Sequence[Release]) -> None:
        await conn.execute(
            self.q["job_release"],
            {"id": [o.id for o in outcomes], "token": [o.token for o in outcomes]},
        )

    async def extend_leases(
        self,
        conn: AsyncConn,
        *,
        ids: Sequence[str],
        tokens: Sequence[str],
        seconds: Sequence[float],
        progress: Sequence[str | None],
    ) -> set[str]:
        cur = await conn.execute(
            self.q["job_extend_leases"],
            {
                "id": list(ids),
                "token": list(tokens),
                "seconds": list(seconds),
                "progress": list(progress),
            },
        )
        return {row[0] for row in await cur.fetchall()}

    async def rescue_expired(self, conn: AsyncConn, *, limit: int = 1000) -> RescueCount:
        async with conn.cursor(row_factory=class_row(RescueCount)) as cur:
            await cur.execute(
                self.q["job_rescue_expired"],
                {"limit": limit, "result_ttl": self.result_ttl, "channel": self.q.channels.done},
            )
            row = await cur.fetchone()
            return row or RescueCount(0, 0)

    async def cancel_expired(self, conn: AsyncConn, *, limit: int = 1000) -> int:
        cur = await conn.execute(
            self.q["job_cancel_expired"],
            {"limit": limit, "result_ttl": self.result_ttl, "channel": self.q.channels.done},
        )
        return cur.rowcount

    async def prune_results(self, conn: AsyncConn, *, limit: int = 5000) -> int:
        cur = await conn.execute(self.q["result_prune"], {"limit": limit})
        return cur.rowcount

    async def vacuum_if_due(
        self, conn: AsyncConn, *, base: int = VACUUM_BASE, scale: float = VACUUM_SCALE
    ) -> int:
        """VACUUM the jobs table when enough dead rows piled up; returns their number (0: no vacuum).

        Every claimed job leaves a dead entry at the front of the claim index, and every
        claim steps over all of them until a vacuum removes them: claims slow down with
        each job drained since the last one (twice as slow after 800k jobs). Autovacuum
        looks at a table at most once a minute, too seldom for a queue that drains tens
        of thousands of jobs a second. The statistics lag by about a second.
        """
        schema = {"schema": self.q.namespace}
        cur = await conn.execute(self.q["job_dead_rows"], {**schema, "base": base, "scale": scale})
        row = await cur.fetchone()
        if row is None or not row[1]:
            return 0
        return int(row[0]) if await self.vacuum(conn) else 0

    async def vacuum(self, conn: AsyncConn) -> bool:
        """VACUUM the jobs table unless another worker is at it (then False). A
        statement_timeout of the role or database does not cut it short."""
        schema = {"schema": self.q.namespace}
        locked = await (await conn.execute(self.q["job_vacuum_lock"], schema)).fetchone()
        if not locked or not locked[0]:
            return False
        timeout: str | None = None  # the session's own, once it is lifted
        try:
            untimed = await (await conn.execute(self.q["job_vacuum_untimed"])).fetchone()
            timeout = untimed[0] if untimed else None
            await conn.execute(self.q["job_vacuum"], prepare=False)
        finally:
            await conn.execute(self.q["job_vacuum_unlock"], {**schema, "statement_timeout": timeout})
        return True
