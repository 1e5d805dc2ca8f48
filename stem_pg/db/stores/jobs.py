"""The job store: the queue engine's SQL, one async method per named query."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import RowMaker, TupleRow, args_row, class_row

from stem_pg.db.args_json import claim_cursor
from stem_pg.db.queries import Queries
from stem_pg.db.shared import SharedConnection
from stem_pg.db.stores.rows import ClaimedJob, Finish, GivenBack, Release, RescueCount, RetryLater

AsyncConn = psycopg.AsyncConnection[TupleRow]

_CLAIMED_FIELDS = len(ClaimedJob._fields)


def claimed_job_row(cursor: Any) -> RowMaker[ClaimedJob]:
    """The claim's rows as ClaimedJob: its RETURNING columns are the fields in order, so a
    row that has them all becomes the tuple as it is (no constructor call per row); one that
    leaves the last ones out gets their defaults."""
    columns = cursor.description
    if columns is not None and len(columns) == _CLAIMED_FIELDS:
        return functools.partial(tuple.__new__, ClaimedJob)
    return args_row(ClaimedJob)(cursor)


#: About how many bytes of arguments one claim may bring back. A claim's rows arrive whole
#: (libpq's result) and are then decoded, so both copies of every payload exist at once:
#: with 100 KB arguments, an 800-job claim took ~160 MB that the process then kept. Each
#: claim is sized from the payloads of the one before (``ClaimSizer``); the jobs left out are
#: claimed by the next claim, into the slots still free.
CLAIM_ARGS_BYTES = 8_000_000
#: The first claim's rows, before any payload was seen.
FIRST_CLAIM_ROWS = 100


class ClaimSizer:
    """Caps claims so that one claim's arguments stay near ``budget`` bytes."""

    def __init__(self, budget: int = CLAIM_ARGS_BYTES, first: int = FIRST_CLAIM_ROWS) -> None:
        self.budget = budget
        self.first = first
        #: Bytes of arguments per job in the last claim that returned jobs (None: none yet).
        self.per_job: float | None = None
        #: The last claim stopped at its cap, with jobs left and slots free: claim again now.
        self.more = False

    def limit(self, wanted: int) -> int:
        if self.per_job is None:
            return min(wanted, self.first)
        return max(1, min(wanted, int(self.budget / max(self.per_job, 1.0))))

    def saw(self, jobs: Sequence[ClaimedJob], *, capped: bool) -> None:
        """Note the size of a claim's arguments (as stored: ``pg_column_size``)."""
        self.more = capped
        if jobs:
            self.per_job = sum(job.args_size for job in jobs) / len(jobs)


class FinishSent:
    """A ``job_finish`` sent whose reply has not been read (in a pipeline it comes at the sync)."""

    def __init__(self, cursor: psycopg.AsyncCursor[TupleRow]) -> None:
        self._cursor = cursor

    async def read(self) -> tuple[int, list[str]]:
        """(how many jobs it finished, the ids it skipped: their lease token was no longer the
        sender's, so another worker holds or finished them)."""
        row = await self._cursor.fetchone()
        return (int(row[0]), list(row[2] or [])) if row else (0, [])


class JobStore:
    """Queue-engine queries of one namespace, run on a connection the caller owns."""

    def __init__(self, queries: Queries, *, result_ttl: float, pooled: bool = False) -> None:
        self.q = queries
        self.result_ttl = result_ttl
        #: Behind a transaction pooler: no session settings, so each claim is the one that
        #: plans itself (``job_claim_ready``; ``plan_claims`` is not used).
        self.pooled = pooled
        #: Sizes the claims by their payloads (``CLAIM_ARGS_BYTES``).
        self.sizer = ClaimSizer()

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
        tasks: list[str] | None = None,
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs of ``queue`` whose task is one of ``tasks`` (None: any),
        fewer when their payloads are big (``sizer``)."""
        capped = self.sizer.limit(limit)
        jobs = await self._claim(conn, queue, capped, worker_id, token, lease_seconds, tasks)
        self.sizer.saw(jobs, capped=len(jobs) == capped < limit)
        return jobs

    async def _claim(
        self,
        conn: AsyncConn,
        queue: str,
        limit: int,
        worker_id: str,
        token: str,
        lease_seconds: float,
        tasks: list[str] | None,
    ) -> list[ClaimedJob]:
        # A pooler's connection, or one the other loops share (``--connections minimal``):
        # no session plan there, so the claim that plans itself (``job_claim_ready``).
        ready = self.pooled or isinstance(conn, SharedConnection)
        cur = await self._send_claim(conn, queue, limit, worker_id, token, lease_seconds, tasks, ready=ready)
        async with cur:
            return await cur.fetchall()

    async def _send_claim(
        self,
        conn: AsyncConn,
        queue: str,
        limit: int,
        worker_id: str,
        token: str,
        lease_seconds: float,
        tasks: list[str] | None,
        *,
        ready: bool,
    ) -> psycopg.AsyncCursor[ClaimedJob]:
        cur = claim_cursor(conn.cursor(row_factory=claimed_job_row))
        params = {
            "queue": queue,
            "limit": limit,
            "worker_id": worker_id,
            "token": token,
            "lease_seconds": lease_seconds,
            "tasks": tasks,
        }
        return await cur.execute(self.q["job_claim_ready"] if ready else self.q["job_claim"], params)

    async def send_claim(
        self,
        conn: AsyncConn,
        *,
        queue: str,
        limit: int,
        worker_id: str,
        token: str,
        lease_seconds: float,
        tasks: list[str] | None = None,
    ) -> psycopg.AsyncCursor[ClaimedJob]:
        """``job_claim`` inside the caller's transaction, its rows not read yet
        (``read_claim``; in a pipeline they come with its sync): the flush's claim, on a
        connection whose session does not plan claims (``job_claim_ready``)."""
        return await self._send_claim(conn, queue, limit, worker_id, token, lease_seconds, tasks, ready=True)

    async def read_claim(self, cur: psycopg.AsyncCursor[ClaimedJob]) -> list[ClaimedJob]:
        """The jobs a ``send_claim`` leased, once its transaction committed."""
        try:
            return await cur.fetchall()
        finally:
            await cur.close()

    async def waiting_unregistered(
        self, conn: AsyncConn, *, queues: Sequence[str], tasks: list[str]
    ) -> list[tuple[str, int]]:
        """(task, count) of the jobs waiting on ``queues`` whose task is not in ``tasks``."""
        cur = await conn.execute(self.q["job_waiting_unregistered"], {"queues": list(queues), "tasks": tasks})
        return [(str(task), int(count)) for task, count in await cur.fetchall()]

    async def finish(self, conn: AsyncConn, *, outcomes: Sequence[Finish]) -> int:
        """Write ``outcomes``; how many jobs they finished."""
        return (await (await self.send_finish(conn, outcomes=outcomes)).read())[0]

    async def send_finish(self, conn: AsyncConn, *, outcomes: Sequence[Finish]) -> FinishSent:
        """Send ``outcomes``; the reply is read later (``FinishSent.read``): in a pipeline,
        not waiting for it before the next statement is sent saves a round trip."""
        params: dict[str, Any] = {
            # A Finish is a tuple in job_finish's row order: it serialises as that array.
            "outcomes": json.dumps(outcomes, separators=(",", ":")),
            "result_ttl": self.result_ttl,
            "channel": self.q.channels.done,
        }
        return FinishSent(await conn.execute(self.q["job_finish"], params))

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

    async def give_back(
        self,
        conn: AsyncConn,
        *,
        ids: Sequence[str],
        tokens: Sequence[str],
        started: Sequence[bool],
        error: str,
    ) -> GivenBack:
        """Put back, in one statement, the jobs a stopping worker holds: the ``started``
        ones for a retry (the attempt counts, ``error`` joins their history), the others
        as they were before the claim."""
        async with conn.cursor(row_factory=class_row(GivenBack)) as cur:
            await cur.execute(
                self.q["job_give_back"],
                {"id": list(ids), "token": list(tokens), "started": list(started), "error": error},
            )
            row = await cur.fetchone()
            return row or GivenBack(0, 0)

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
