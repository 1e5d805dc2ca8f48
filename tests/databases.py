"""A database of a test's own on the shared server: what one session of a database does to
the others (its snapshots hold back every VACUUM in that database, a terminate-all hits
everyone) stays inside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg import sql


@contextmanager
def private_database(database_url: str, prefix: str = "stem_db") -> Iterator[str]:
    """Create ``prefix_<hex>`` next to ``database_url``'s database; yield its URL; drop it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
