"""What waits to run, grouped by task and argument names: ``stem tasks check`` (synchronous)."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow, class_row

from stem_pg.core.deploy_check import WaitingGroup
from stem_pg.db.queries import Queries


def waiting_groups(conn: psycopg.Connection[TupleRow], queries: Queries) -> list[WaitingGroup]:
    """Queued and scheduled jobs, schedules, planned canvas members and unfinished workflow
    runs, counted by (source, task, argument names, result argument)."""
    with conn.cursor(row_factory=class_row(WaitingGroup)) as cur:
        cur.execute(queries["tasks_check_sources"])
        return cur.fetchall()
