"""Debounced enqueue's statements (``sql/jobs.sql``), on the caller's psycopg connection."""

from __future__ import annotations

from typing import Any

import psycopg

from stem_pg.core.envelope import JobSpec
from stem_pg.db.queries import Queries

Conn = psycopg.Connection[Any]


class DebounceStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def holder(self, conn: Conn, *, task: str, key: str) -> str | None:
        """The id of the job of ``task`` and ``key`` that waits to start, locked; or None."""
        row = conn.execute(self.q["job_debounce_holder"], {"task": task, "key": key}).fetchone()
        return str(row[0]) if row else None

    def replace(self, conn: Conn, *, spec: JobSpec, delay: float) -> None:
        """Make the locked holder ``spec.id`` run ``spec``'s call ``delay`` seconds from now."""
        conn.execute(self.q["job_debounce_replace"], {**spec.params(), "delay": delay})

    def insert(self, conn: Conn, *, spec: JobSpec, key: str, delay: float) -> bool:
        """Insert ``spec`` as the job of its task and ``key``; False if another one holds them."""
        params = {**spec.params(), "key": key, "delay": delay}
        return conn.execute(self.q["job_debounce_insert"], params).fetchone() is not None
