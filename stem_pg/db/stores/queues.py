"""Operator actions on a whole queue: count and purge (cancel) its waiting jobs (synchronous; the CLI)."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow, scalar_row

from stem_pg.db.queries import Queries

Conn = psycopg.Connection[TupleRow]


class QueueStore:
    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def waiting(self, conn: Conn, *, queue: str) -> int:
        """Jobs of ``queue`` that wait (ready or scheduled, not running)."""
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(self.q["queue_waiting_count"], {"queue": queue})
            count = cur.fetchone()
        return int(count or 0)

    def purge(self, conn: Conn, *, queue: str, result_ttl: float, error: str) -> int:
        """Cancel the waiting jobs of ``queue`` (each gets a 'cancelled' result saying ``error``,
        kept ``result_ttl`` seconds); how many. Running jobs, results and dead letters stay."""
        params = {
            "queue": queue,
            "result_ttl": result_ttl,
            "error": error,
            "done_channel": self.q.channels.done,
        }
        with conn.cursor(row_factory=scalar_row) as cur:
            cur.execute(self.q["queue_purge"], params)
            count = cur.fetchone()
        return int(count or 0)
