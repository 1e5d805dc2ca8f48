"""``check_health`` lists every schema that looks migrated, with its revision."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.db.stores.catalog import CatalogStore
from stem_pg.schema.health import check_health
from stem_pg.schema.migrate import head_revision
from tests.helpers import drop_schema


@pytest.fixture
def lookalike(database_url: str) -> Iterator[str]:
    """A schema no namespace could be named (upper case) with a jobs and an empty version table."""
    name = f"Other-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in (
            "CREATE SCHEMA {}",
            "CREATE TABLE {}.jobs (id text)",
            "CREATE TABLE {}.alembic_version (version_num varchar(32) NOT NULL)",
        ):
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
    yield name
    drop_schema(database_url, name)


def test_health_reports_each_migrated_schema(database_url: str, namespace: str, lookalike: str) -> None:
    report = check_health(database_url)
    assert report.server_version
    assert report.namespaces[namespace] == head_revision()
    assert report.namespaces[lookalike] is None, "an empty version table has no revision"


def test_a_namespace_dropped_while_the_check_reads_is_left_out(
    database_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed, then dropped before its version is read (another namespace being removed as a
    # probe runs): the check reports the others instead of failing.
    listed = CatalogStore.migrated_schemas

    def with_a_vanished_one(self: CatalogStore, conn: Any) -> list[Any]:
        found = list(listed(self, conn))
        return [*found, replace(found[0], schema="t-dropped-meanwhile")]

    monkeypatch.setattr(CatalogStore, "migrated_schemas", with_a_vanished_one)
    report = check_health(database_url)
    assert report.namespaces[namespace] == head_revision()
    assert "t-dropped-meanwhile" not in report.namespaces
