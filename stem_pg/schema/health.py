"""Health checks: connectivity, server version and migrated namespaces."""

from __future__ import annotations

from dataclasses import dataclass

from stem_pg.db.connect import connection
from stem_pg.db.stores.catalog import CatalogStore


@dataclass(frozen=True)
class HealthReport:
    server_version: str
    namespaces: dict[str, str | None]


def check_health(url: str) -> HealthReport:
    """Connect, read the server version and the revision of every stem_pg namespace.

    Raises DatabaseUnavailable when the database cannot be reached.
    """
    store = CatalogStore()
    with connection(url, role="health") as conn:
        version = store.server_version(conn).server_version
        namespaces: dict[str, str | None] = {}
        for found in store.migrated_schemas(conn):
            revision = store.revision(conn, schema=found.schema)
            namespaces[found.schema] = revision.revision if revision else None
    return HealthReport(version, namespaces)
