"""Health checks: connectivity, server version and migrated namespaces."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from stem_pg.db.connect import connection
from stem_pg.db.queries import query_text


@dataclass(frozen=True)
class HealthReport:
    server_version: str
    namespaces: dict[str, str | None]


def check_health(url: str) -> HealthReport:
    """Connect, read the server version and the revision of every stem_pg namespace."""
    with connection(url, role="health") as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        schemas = [row[0] for row in conn.execute(query_text("migrated_schemas"))]
        namespaces: dict[str, str | None] = {}
        for schema in schemas:
            query = sql.SQL("SELECT version_num FROM {}.alembic_version").format(sql.Identifier(schema))
            row = conn.execute(query).fetchone()
            namespaces[schema] = row[0] if row else None
    return HealthReport(version, namespaces)
