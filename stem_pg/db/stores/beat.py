"""Beat's queries (asynchronous): due entries, the one-statement fire, fire-record retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.envelope import JobSpec
from stem_pg.db.queries import Queries
from stem_pg.db.stores.schedules import ScheduleRow

AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class Shot:
    """What to do with one due entry: fire ``fire_time`` (with ``job``) or not, then move on.

    ``expected`` and ``version`` are what beat read: the fire applies only if the
    entry is still exactly so.
    """

    name: str
    expected: datetime
    version: int
    fire: bool
    fire_time: datetime
    next_run_at: datetime | None
    job: JobSpec | None = None
    error: str | None = None


@dataclass(frozen=True)
class Fired:
    """An entry the fire statement advanced; ``task_id`` is set when it enqueued a job."""

    name: str
    fired: bool
    task_id: str | None
    enqueued: int


_JOB_COLUMNS = (
    "id",
    "task",
    "queue",
    "priority",
    "args",
    "headers",
    "max_retries",
    "countdown",
    "visibility_timeout",
    "acks_late",
    "unique_key",
    "unique_for",
)


def fire_params(shots: Sequence[Shot]) -> dict[str, list[Any]]:
    """Parallel arrays for ``beat_fire`` (job columns are NULL where nothing fires)."""
    params: dict[str, list[Any]] = {
        "name": [s.name for s in shots],
        "expected": [s.expected for s in shots],
        "version": [s.version for s in shots],
        "fire": [s.fire and s.job is not None for s in shots],
        "fire_time": [s.fire_time for s in shots],
        "next_run_at": [s.next_run_at for s in shots],
        "error": [s.error for s in shots],
    }
    for column in _JOB_COLUMNS:
        params[column] = [getattr(s.job, column) if s.job is not None else None for s in shots]
    return params


class BeatStore:
    """Beat's queries of one namespace, on a connection the caller owns (autocommit)."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def due(self, conn: AsyncConn, *, now: datetime, limit: int) -> list[ScheduleRow]:
        """Entries whose next fire time has come (so ``next_run_at`` is never None), oldest first."""
        async with conn.cursor(row_factory=class_row(ScheduleRow)) as cur:
            await cur.execute(self.q["beat_due"], {"now": now, "limit": limit})
            return await cur.fetchall()

    async def next_due(self, conn: AsyncConn, *, now: datetime) -> datetime | None:
        cur = await conn.execute(self.q["beat_next_due"], {"now": now})
        row = await cur.fetchone()
        return None if row is None else row[0]

    async def fire(
        self,
        conn: AsyncConn,
        *,
        shots: Sequence[Shot],
        now: datetime,
        beat_id: str,
        lock_key: str,
        token: int | None,
    ) -> list[Fired]:
        """Apply ``shots`` in one statement; entries another beat changed or holds are left out."""
        params: dict[str, Any] = {
            **fire_params(shots),
            "now": now,
            "beat_id": beat_id,
            "lock_key": lock_key,
            "token": token,
        }
        async with conn.cursor(row_factory=class_row(Fired)) as cur:
            await cur.execute(self.q["beat_fire"], params)
            return await cur.fetchall()

    async def prune_fires(self, conn: AsyncConn, *, keep: float, limit: int) -> int:
        cur = await conn.execute(self.q["beat_fires_prune"], {"keep": keep, "limit": limit})
        return cur.rowcount
