"""Shared fixtures: a real Postgres (STEM_TEST_DATABASE_URL or the embedded one) and a
fresh, migrated namespace per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from tests.helpers import apply_migrations, unique_namespace
from tests.namespace_stock import NamespaceStock


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """STEM_TEST_DATABASE_URL, else an embedded server of this session's own, in a temporary
    directory that is stopped and deleted at the end (never the user's `stem embedded` one)."""
    url = os.environ.get("STEM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from stem_pg.dev.embedded import EmbeddedPostgres, _free_port

    data_dir = Path(tempfile.mkdtemp(prefix="stem_pg-tests-"))
    server = EmbeddedPostgres(data_dir / "pg", port=_free_port())
    try:
        yield server.start()
    finally:
        server.stop(force=True)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def namespace_stock(database_url: str) -> Iterator[NamespaceStock]:
    """Migrated namespaces made ahead, and used ones dropped behind, by a thread of the session."""
    stock = NamespaceStock(database_url)
    try:
        yield stock
    finally:
        stock.close()


@pytest.fixture
def fresh_namespace(database_url: str, namespace_stock: NamespaceStock) -> Iterator[str]:
    """A unique namespace name, not migrated; dropped afterwards."""
    name = unique_namespace()
    yield name
    namespace_stock.discard(name)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, database_url: str, namespace_stock: NamespaceStock) -> str:
    """A unique, migrated namespace (by the migrations' SQL: tests.helpers.apply_migrations).

    It is ``fresh_namespace`` when the test asks for that too; else one the stock made ahead.
    """
    if "fresh_namespace" in request.fixturenames:
        name: str = request.getfixturevalue("fresh_namespace")
        apply_migrations(database_url, name)
        return name
    name = namespace_stock.take()
    request.addfinalizer(lambda: namespace_stock.discard(name))
    return name


@pytest.fixture
def app(database_url: str, namespace: str) -> Iterator[Stem]:
    stem = Stem(database_url, namespace=namespace, config=StemConfig())
    yield stem
    stem.close()


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
