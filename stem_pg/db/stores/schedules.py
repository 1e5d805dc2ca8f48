"""The schedule store as users edit it: list, get, create, update, enable, delete (synchronous).

Every write names the version it read (optimistic locking); a None result
means the entry changed (or vanished) since, and the caller reports a conflict.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.schedules import ScheduleEntry
from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class ScheduleRow:
    """One stored entry: its definition, its version and beat's bookkeeping.

    What people list and edit, and what beat reads when an entry is due.
    """

    name: str
    task: str
    spec: dict[str, Any]
    kwargs: dict[str, Any]
    queue: str | None
    priority: int | None
    jitter: float
    enabled: bool
    expires_at: datetime | None
    misfire: str
    misfire_grace: float
    description: str | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    total_runs: int
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    drift: float | None
    version: int
    created_at: datetime
    updated_at: datetime
    #: ``store`` (a file, the CLI, app.schedules) or ``code`` (``@app.periodic``, synced by beat).
    origin: str = "store"


@dataclass(frozen=True)
class FireRecord:
    """One recorded fire: the job it enqueued, when, by which beat under which fencing token."""

    schedule: str
    fire_time: datetime
    task_id: str
    fired_at: datetime
    beat_id: str | None
    fence: int | None


def definition_params(entry: ScheduleEntry) -> dict[str, Any]:
    """Bind parameters for the definition columns of ``entry``."""
    return {
        "name": entry.name,
        "task": entry.task,
        "spec": json.dumps(entry.spec.to_json()),
        "kwargs": json.dumps(dict(entry.kwargs)),
        "queue": entry.queue,
        "priority": entry.priority,
        "jitter": entry.jitter,
        "enabled": entry.enabled,
        "expires_at": entry.expires_at,
        "misfire": entry.misfire,
        "misfire_grace": entry.misfire_grace,
        "description": entry.description,
    }


class ScheduleStore:
    """Schedule queries of one namespace on a connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def list(self, conn: Conn) -> builtins.list[ScheduleRow]:
        with conn.cursor(row_factory=class_row(ScheduleRow)) as cur:
            cur.execute(self.q["schedule_list"])
            return cur.fetchall()

    def get(self, conn: Conn, *, name: str) -> ScheduleRow | None:
        with conn.cursor(row_factory=class_row(ScheduleRow)) as cur:
            cur.execute(self.q["schedule_get"], {"name": name})
            return cur.fetchone()

    def insert(
        self, conn: Conn, *, entry: ScheduleEntry, next_run_at: datetime | None, origin: str = "store"
    ) -> int | None:
        """Create ``entry``; its version, or None if the name is taken."""
        params = {**definition_params(entry), "next_run_at": next_run_at, "origin": origin}
        row = conn.execute(self.q["schedule_insert"], params).fetchone()
        return None if row is None else int(row[0])

    def update(
        self,
        conn: Conn,
        *,
        entry: ScheduleEntry,
        version: int,
        reschedule: bool,
        next_run_at: datetime | None,
    ) -> int | None:
        """Replace the definition if still at ``version``; the new version, or None."""
        params = {
            **definition_params(entry),
            "version": version,
            "reschedule": reschedule,
            "next_run_at": next_run_at,
        }
        row = conn.execute(self.q["schedule_update"], params).fetchone()
        return None if row is None else int(row[0])

    def set_enabled(
        self, conn: Conn, *, name: str, enabled: bool, next_run_at: datetime | None, version: int | None
    ) -> int | None:
        params = {"name": name, "enabled": enabled, "next_run_at": next_run_at, "version": version}
        row = conn.execute(self.q["schedule_set_enabled"], params).fetchone()
        return None if row is None else int(row[0])

    def delete(self, conn: Conn, *, name: str, version: int | None) -> bool:
        row = conn.execute(self.q["schedule_delete"], {"name": name, "version": version}).fetchone()
        return row is not None

    def recent_fires(self, conn: Conn, *, name: str, limit: int) -> builtins.list[FireRecord]:
        with conn.cursor(row_factory=class_row(FireRecord)) as cur:
            cur.execute(self.q["schedule_fires_recent"], {"name": name, "limit": limit})
            return cur.fetchall()
