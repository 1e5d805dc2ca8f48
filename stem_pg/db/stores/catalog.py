"""The catalog store: what the database holds beyond one namespace (``sql/catalog.sql``)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow, class_row, scalar_row

from stem_pg.db.queries import load_queries, query_text

Conn = psycopg.Connection[TupleRow]
AsyncConn = psycopg.AsyncConnection[TupleRow]


@dataclass(frozen=True)
class ServerVersion:
    server_version: str


@dataclass(frozen=True)
class MigratedSchema:
    """A schema with stem_pg's jobs table and an alembic version table."""

    schema: str


@dataclass(frozen=True)
class SchemaRevision:
    revision: str


@dataclass(frozen=True)
class VersionTable:
    present: bool
    readable: bool


class CatalogStore:
    """Database-wide queries on a synchronous connection the caller owns (``stem health``)."""

    def server_version(self, conn: Conn) -> ServerVersion:
        with conn.cursor(row_factory=class_row(ServerVersion)) as cur:
            cur.execute(query_text("server_version"))
            found = cur.fetchone()
        assert found is not None, "SHOW always returns a row"
        return found

    def migrated_schemas(self, conn: Conn) -> list[MigratedSchema]:
        with conn.cursor(row_factory=class_row(MigratedSchema)) as cur:
            cur.execute(query_text("migrated_schemas"))
            return cur.fetchall()

    def version_table(self, conn: Conn, *, schema: str) -> VersionTable:
        """Whether ``schema`` has an alembic version table this role may read (never raises
        for a missing schema)."""
        with conn.cursor(row_factory=class_row(VersionTable)) as cur:
            cur.execute(query_text("version_table"), {"schema": schema})
            found = cur.fetchone()
        assert found is not None, "one row from a FROM-less subquery"
        return found

    def revision(self, conn: Conn, *, schema: str) -> SchemaRevision | None:
        """The revision ``schema`` is at; None when its version table is empty.

        ``schema`` comes from the catalog and need not be a valid namespace name (another
        tool's schema may look like ours), so it is quoted here rather than validated.
        """
        text = sql.SQL(load_queries()["schema_revision"].text).format(ns=sql.Identifier(schema))
        with conn.cursor(row_factory=class_row(SchemaRevision)) as cur:
            cur.execute(text)
            return cur.fetchone()


class AsyncCatalogStore:
    """Database-wide queries on an asynchronous connection the caller owns (the dashboard's
    live feed)."""

    async def in_recovery(self, conn: AsyncConn) -> bool:
        """Whether the server is a standby, which refuses writes and LISTEN."""
        async with conn.cursor(row_factory=scalar_row) as cur:
            await cur.execute(query_text("in_recovery"))
            return bool(await cur.fetchone())
