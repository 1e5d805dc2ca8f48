"""Reading task state for people: ``stem tasks show`` (synchronous)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries
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


def state_counts(conn: psycopg.Connection[TupleRow], queries: Queries) -> list[StateCount]:
    """How many tasks are in each state (what ``stem demo`` prints at the end)."""
    with conn.cursor(row_factory=class_row(StateCount)) as cur:
        cur.execute(queries["demo_state_counts"])
        return cur.fetchall()
