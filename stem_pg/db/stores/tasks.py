"""Reading task state for people: ``stem tasks show`` (synchronous)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries


@dataclass(frozen=True)
class TaskDetail:
    id: str
    task: str
    queue: str
    priority: int
    state: str
    attempts: int
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error: str | None
    result: Any
    traceback: str | None
    args: dict[str, Any] | None
    headers: dict[str, Any] | None
    errors: list[dict[str, Any]] | None
    not_before: datetime | None
    lease_expires_at: datetime | None
    progress: Any


def show_task(conn: psycopg.Connection[TupleRow], queries: Queries, task_id: str) -> TaskDetail | None:
    """Everything known about ``task_id`` (the live row first if it was re-enqueued)."""
    with conn.cursor(row_factory=class_row(TaskDetail)) as cur:
        cur.execute(queries["task_show"], {"id": task_id})
        rows = cur.fetchall()
    live = [r for r in rows if r.finished_at is None]
    found = live or rows
    return found[0] if found else None
