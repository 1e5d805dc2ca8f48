"""Shared fixtures: a real Postgres (STEM_TEST_DATABASE_URL or the embedded one) and a
fresh, migrated namespace per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.schema.migrate import migrate
from tests.helpers import drop_schema, unique_namespace


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("STEM_TEST_DATABASE_URL")
    if url:
        return url
    from stem_pg.dev.embedded import embedded_url

    return embedded_url()


@pytest.fixture
def fresh_namespace(database_url: str) -> Iterator[str]:
    """A unique namespace name, not migrated; dropped afterwards."""
    name = unique_namespace()
    yield name
    drop_schema(database_url, name)


@pytest.fixture
def namespace(database_url: str, fresh_namespace: str) -> str:
    """A unique, migrated namespace."""
    migrate(database_url, fresh_namespace)
    return fresh_namespace


@pytest.fixture
def app(database_url: str, namespace: str) -> Iterator[Stem]:
    stem = Stem(database_url, namespace=namespace, config=StemConfig())
    yield stem
    stem.close()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
