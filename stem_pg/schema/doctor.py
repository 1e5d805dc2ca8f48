"""``stem doctor``'s examination: read the statistics through the stores, compare the
namespace's indexes with the ones the migrations build, and let the core decide."""

from __future__ import annotations

import asyncio

from sqlalchemy import UniqueConstraint

from stem_pg.core.doctor import (
    Finding,
    Thresholds,
    fleet_findings,
    horizon_findings,
    index_findings,
    server_findings,
    table_findings,
)
from stem_pg.db.connect import connect_async
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.doctor import DoctorStore
from stem_pg.db.stores.vacuum import VacuumStore
from stem_pg.schema.health import check_migrated
from stem_pg.schema.tables import metadata_for


def expected_indexes(namespace: str) -> set[str]:
    """The names of the indexes the migrations create in ``namespace`` (schema/tables.py,
    which a test keeps equal to the migrated schema), primary keys and unique constraints
    included."""
    names: set[str] = set()
    for table in metadata_for(namespace).tables.values():
        names.update(str(index.name) for index in table.indexes if index.name)
        names.add(str(table.primary_key.name or f"{table.name}_pkey"))
        names.update(
            str(c.name)
            for c in table.constraints
            if isinstance(c, UniqueConstraint) and isinstance(c.name, str)
        )
    return names


def examine(url: str, namespace: str, thresholds: Thresholds | None = None) -> list[Finding]:
    """The findings about ``namespace``'s queue and its server.

    Raises NotMigratedError when the namespace is not migrated, DatabaseUnavailable when the
    database cannot be reached."""
    check_migrated(url, namespace)
    return asyncio.run(_examine(url, namespace, thresholds or Thresholds()))


async def _examine(url: str, namespace: str, th: Thresholds) -> list[Finding]:
    queries = queries_for(namespace)
    doctor, vacuum = DoctorStore(queries), VacuumStore(queries)
    conn = await connect_async(url, role="doctor")
    try:
        holders = await vacuum.holders(conn)
        table = await doctor.jobs_table(conn)
        indexes = await doctor.indexes(conn)
        server = await doctor.server(conn)
        live = await doctor.live_workers(conn, stale_after=th.worker_stale_after)
    finally:
        await conn.close()
    return [
        *horizon_findings(holders, th),
        *table_findings(table, th),
        *index_findings(indexes, expected_indexes(namespace), th),
        *server_findings(server, th),
        *fleet_findings(*live, server, th),
    ]
