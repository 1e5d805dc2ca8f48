"""Rate and concurrency limits: the limited claim and the ``limiters`` rows (migration 0013)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.args_json import claim_cursor
from stem_pg.db.queries import Queries
from stem_pg.db.stores.rows import ClaimedJob

AsyncConn = psycopg.AsyncConnection[TupleRow]
Conn = psycopg.Connection[TupleRow]


@dataclass
class LimitedClaim:
    """What one limited claim leased, and why it did not lease more."""

    jobs: list[ClaimedJob] = field(default_factory=list)
    #: Seconds until a rate limit that held jobs back has a token again (None: none did).
    wait: float | None = None
    #: Another claim held a limiter this one needed (try again soon).
    busy: bool = False
    #: Limits whose ``limiters`` row is gone ("rate task:x", "concurrency queue:q").
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class LimiterRow:
    """A row of the ``limiter_state`` view."""

    kind: str
    scope: str
    key: str
    per_second: float | None
    burst: float | None
    concurrency: int | None
    key_field: str | None
    fail_open: bool
    tokens: float | None
    running: int
    ready: int


class LimitStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def send_claim(
        self,
        conn: AsyncConn,
        *,
        queue: str,
        limit: int,
        worker_id: str,
        token: str,
        lease_seconds: float,
        spec: str,
        tasks: list[str] | None = None,
    ) -> psycopg.AsyncCursor[TupleRow]:
        """``job_claim_limited``, its rows not read yet (``read_claim``; in a pipeline they
        come with its sync): ``spec`` is the queue's ``ClaimPlan`` spec as JSON; ``tasks``
        the task names the worker registers (None: any task, the catch-all)."""
        params = {
            "queue": queue,
            "limit": limit,
            "worker_id": worker_id,
            "token": token,
            "lease_seconds": lease_seconds,
            "spec": spec,
            "tasks": tasks,
        }
        return await claim_cursor(conn.cursor()).execute(self.q["job_claim_limited"], params)

    async def read_claim(self, cur: psycopg.AsyncCursor[TupleRow]) -> LimitedClaim:
        claim = LimitedClaim()
        for row in await cur.fetchall():
            if row[0] is not None:
                claim.jobs.append(ClaimedJob(*row[:12]))
                continue
            note = json.loads(row[12])
            claim.wait, claim.busy, claim.missing = note["wait"], note["busy"], tuple(note["missing"])
        return claim

    async def register(self, conn: AsyncConn, *, rows: Sequence[Mapping[str, Any]]) -> None:
        """Make (or update) the row of each declared limit, and its groups' settings."""
        if rows:
            await conn.execute(self.q["limiters_register"], {"rows": json.dumps(list(rows))})
            await conn.execute(self.q["limiters_groups_update"])

    async def prune(self, conn: AsyncConn, *, limit: int = 1000) -> int:
        """Forget idle group rows (``limiters_prune``); how many."""
        cur = await conn.execute(self.q["limiters_prune"], {"limit": limit})
        return cur.rowcount

    async def wake(self, conn: AsyncConn, *, queues: Sequence[str]) -> None:
        await conn.execute(self.q["limited_wake"], {"channel": self.q.channels.jobs, "queues": list(queues)})

    def state(self, conn: Conn) -> list[LimiterRow]:
        """The ``limiter_state`` view (``stem worker inspect``)."""
        with conn.cursor(row_factory=class_row(LimiterRow)) as cur:
            cur.execute(self.q["limiter_state"])
            return cur.fetchall()
