"""Reading task state for people: ``stem tasks show`` (synchronous)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import psycopg
from psycopg.rows import TupleRow, class_row, scalar_row

from stem_pg.db.queries import Queries, query_text
from stem_pg.db.stores.rows import TaskStatus


def show_task(conn: psycopg.Connection[TupleRow], queries: Queries, task_id: str) -> TaskStatus | None:
    """Everything known about ``task_id`` (the live row first if it was re-enqueued)."""
    with conn.cursor(row_factory=class_row(TaskStatus)) as cur:
        cur.execute(queries["task_show"], {"id": task_id})
        rows = cur.fetchall()
    live = [r for r in rows if r.finished_at is None]
    found = live or rows
    return found[0] if found else None


@dataclass(frozen=True)
class StateCount:
    state: str
    count: int


def state_counts(
    conn: psycopg.Connection[TupleRow], queries: Queries, *, since: datetime
) -> list[StateCount]:
    """How many tasks enqueued at ``since`` or later are in each state (what ``stem demo``
    prints at the end)."""
    with conn.cursor(row_factory=class_row(StateCount)) as cur:
        cur.execute(queries["demo_state_counts"], {"since": since})
        return cur.fetchall()


def database_now(conn: psycopg.Connection[TupleRow]) -> datetime:
    """The database's clock: what ``enqueued_at`` is compared with."""
    with conn.cursor(row_factory=scalar_row) as cur:
        cur.execute(query_text("demo_now"))
        now = cur.fetchone()
    assert now is not None
    return cast(datetime, now)
