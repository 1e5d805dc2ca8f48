"""Running the roles script of ``stem_pg.schema.roles`` (DDL built per namespace, not a named query)."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

SyncConn = psycopg.Connection[TupleRow]


class RoleStore:
    def apply(self, conn: SyncConn, script: sql.Composed) -> None:
        """Run ``script`` in one transaction: all its roles and grants, or none."""
        with conn.transaction():
            conn.execute(script)
