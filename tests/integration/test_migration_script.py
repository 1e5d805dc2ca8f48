"""The ``namespace`` fixture builds namespaces with the SQL ``stem migrate --sql`` prints
(tests.helpers.apply_migrations): it builds what ``migrate()`` builds, version table included."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from stem_pg.schema.migrate import head_revision, migrate
from tests.helpers import apply_migrations, drop_schema, unique_namespace
from tests.integration.test_schema_snapshot import snapshot


@pytest.fixture
def other_namespace(database_url: str) -> Iterator[str]:
    name = unique_namespace("script")
    yield name
    drop_schema(database_url, name)


def test_the_migration_script_builds_what_migrate_builds(
    database_url: str, fresh_namespace: str, other_namespace: str
) -> None:
    migrate(database_url, fresh_namespace)
    apply_migrations(database_url, other_namespace)
    assert snapshot(database_url, other_namespace) == snapshot(database_url, fresh_namespace)
    with psycopg.connect(database_url) as conn:
        for name in (fresh_namespace, other_namespace):
            version = sql.SQL("SELECT version_num FROM {}").format(sql.Identifier(name, "alembic_version"))
            assert conn.execute(version).fetchall() == [(head_revision(),)]
