"""A throwaway namespace for a test, and an app pointed at it for the test's length."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from psycopg import sql

from stem_pg.client.backend import Backend
from stem_pg.db.connect import connect
from stem_pg.db.queries import Queries
from stem_pg.db.stores.testing import TestingStore
from stem_pg.schema.migrate import migration_sql

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

#: The namespace the migrations' SQL is rendered for once, then renamed for each test.
_TEMPLATE = "stem-testing-template"


@functools.cache
def _migration_script() -> str:
    """The SQL of every migration (as ``stem migrate --sql`` prints it), rendered once: alembic
    renders with global state, so the first call should come from the main thread."""
    return migration_sql(_TEMPLATE)


def create_namespace(url: str, prefix: str = "test") -> str:
    """A new namespace (``prefix-<10 hex digits>``) migrated to the head; returns its name.
    It runs the migrations' SQL in one round trip, without alembic's start-up per call."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    quoted = sql.Identifier(name).as_string(None)
    script = _migration_script().replace(sql.Identifier(_TEMPLATE).as_string(None), quoted)
    with connect(url, role="testing") as conn:
        TestingStore(Queries(name)).create_namespace(conn, script=script)
    return name


def drop_namespace(url: str, namespace: str) -> None:
    """Drop ``namespace`` and everything in it."""
    with connect(url, role="testing") as conn:
        TestingStore(Queries(namespace)).drop_namespace(conn)


@contextmanager
def migrated_namespace(url: str, prefix: str = "test") -> Iterator[str]:
    """A fresh migrated namespace for the block, dropped after it."""
    name = create_namespace(url, prefix)
    try:
        yield name
    finally:
        drop_namespace(url, name)


@contextmanager
def bound(app: Stem, url: str, namespace: str) -> Iterator[Stem]:
    """``app`` itself, pointed at ``url`` and ``namespace`` for the block (whatever its code or
    STEM_BROKER_URL / STEM_NAMESPACE say), so code that enqueues through it (``task.delay``)
    reaches the test's namespace. Its tasks, routing and signals stay; its pools are new for
    the block and closed after it, when its own backend comes back."""
    original = app.backend
    backend = Backend(url, namespace, result_ttl=original.result_ttl, pool_size=original.pool_size)
    backend.signals = original.signals
    app.backend = backend
    try:
        yield app
    finally:
        app.backend = original
        backend.close()
