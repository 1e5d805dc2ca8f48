"""``check_health`` lists every schema that looks migrated, with its revision."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

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
