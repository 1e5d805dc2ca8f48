"""The canvas store: recording chains, groups and chords and reading their state (``sql/canvas.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class CanvasMember:
    """One member of a canvas to record; ``job`` is the planned job of a member enqueued later."""

    task_id: str
    task: str
    job: str | None
    result_arg: str | None


@dataclass(frozen=True)
class CanvasStatus:
    """A canvas with its members' states (``members``: position, task_id, task, state, error)."""

    id: str
    kind: str
    state: str
    size: int
    pending: int
    failed: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    members: list[dict[str, Any]]


class CanvasStore:
    """Canvas queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def create(
        self,
        conn: Conn,
        *,
        id: str,
        kind: str,
        size: int,
        result_ttl: float,
        members: Sequence[CanvasMember],
    ) -> None:
        """Record a canvas and its members, in input order, in one statement (``canvas_create``)."""
        conn.execute(
            self.q["canvas_create"],
            {
                "id": id,
                "kind": kind,
                "size": size,
                "result_ttl": result_ttl,
                "position": list(range(len(members))),
                "task_id": [m.task_id for m in members],
                "task": [m.task for m in members],
                "job": [m.job for m in members],
                "result_arg": [m.result_arg for m in members],
            },
        )

    def status(self, conn: Conn, *, id: str) -> CanvasStatus | None:
        """One canvas with its members' states (``canvas_status``), or None if unknown."""
        with conn.cursor(row_factory=class_row(CanvasStatus)) as cur:
            cur.execute(self.q["canvas_status"], {"id": id})
            return cur.fetchone()
