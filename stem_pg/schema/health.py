"""Health checks: connectivity, server version and migrated namespaces."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg

from stem_pg.core.errors import DatabaseUnavailable, NotMigratedError
from stem_pg.db.connect import connection
from stem_pg.db.stores.catalog import CatalogStore
from stem_pg.schema.revisions import is_older_than_head

log = logging.getLogger(__name__)

#: Seconds a starting worker or beat waits for a server that is restarting (libpq's
#: "the database system is starting up / shutting down / in recovery mode" refusals).
STARTING_UP_WAIT = 60.0
_RESTARTING = "the database system is"


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
            try:
                revision = store.revision(conn, schema=found.schema)
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                continue  # dropped since it was listed (a namespace being removed): not one now
            namespaces[found.schema] = revision.revision if revision else None
    return HealthReport(version, namespaces)


def check_migrated(url: str, namespace: str, *, starting_up_wait: float = STARTING_UP_WAIT) -> None:
    """Raise NotMigratedError unless ``namespace`` is at this version's head revision (or at
    one newer than this version knows, which expand-contract migrations keep compatible).

    A role that may not read the version table (``stem roles``' worker) is only checked for
    the table's presence. Raises DatabaseUnavailable when the database cannot be reached: at
    once for a wrong host, port, database or password; after up to ``starting_up_wait``
    seconds while the server says it is starting up or shutting down (a restart).
    """
    deadline = time.monotonic() + starting_up_wait
    delay = 0.1
    while True:
        try:
            return _check_migrated(url, namespace)
        except DatabaseUnavailable as exc:
            if _RESTARTING not in str(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("the database is restarting; checking namespace %s again shortly", namespace)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _check_migrated(url: str, namespace: str) -> None:
    store = CatalogStore()
    with connection(url, role="check") as conn:
        table = store.version_table(conn, schema=namespace)
        if not table.present:
            raise NotMigratedError(namespace)
        if not table.readable:
            return
        found = store.revision(conn, schema=namespace)
    if found is None or is_older_than_head(found.revision):
        raise NotMigratedError(namespace)
