"""The dead-letter table: list, show, replay and purge (synchronous; used by the CLI and API)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    task_id: str
    task: str
    queue: str
    priority: int
    reason: str
    error: str | None
    attempts: int
    dead_at: datetime
    replayed_at: datetime | None


@dataclass(frozen=True)
class DeadLetterDetail:
    id: int
    task_id: str
    task: str
    queue: str
    priority: int
    args: dict[str, Any]
    headers: dict[str, Any]
    max_retries: int
    reason: str
    error: str | None
    errors: list[dict[str, Any]]
    attempts: int
    enqueued_at: datetime
    dead_at: datetime
    replayed_at: datetime | None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a command applies to; None means "any"."""

    queue: str | None = None
    since: datetime | None = None
    limit: int = 100

    def params(self) -> dict[str, Any]:
        return {"queue": self.queue, "since": self.since, "limit": self.limit}


class DeadLetterStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def list(self, conn: Conn, *, where: DeadLetterFilter) -> builtins.list[DeadLetter]:
        with conn.cursor(row_factory=class_row(DeadLetter)) as cur:
            cur.execute(self.q["dlq_list"], where.params())
            return cur.fetchall()

    def show(self, conn: Conn, *, key: str) -> builtins.list[DeadLetterDetail]:
        with conn.cursor(row_factory=class_row(DeadLetterDetail)) as cur:
            cur.execute(self.q["dlq_show"], {"key": key})
            return cur.fetchall()

    def replay(self, conn: Conn, *, where: DeadLetterFilter, key: str | None = None) -> builtins.list[str]:
        """Enqueue matching dead letters again; returns the task ids now queued."""
        cur = conn.execute(self.q["dlq_replay"], {**where.params(), "key": key})
        return [row[0] for row in cur.fetchall()]

    def purge(self, conn: Conn, *, where: DeadLetterFilter) -> int:
        cur = conn.execute(self.q["dlq_purge"], where.params())
        return cur.rowcount
