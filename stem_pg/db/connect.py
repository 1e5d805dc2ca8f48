"""Opening connections: one place that sets connection options and hides passwords."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from stem_pg.core.dsn import redact
from stem_pg.core.errors import StemError

APPLICATION_NAME = "stem_pg"


class DatabaseUnavailable(StemError):
    """The database cannot be reached; the message never contains a password."""


def connect(url: str, *, autocommit: bool = True, role: str = "client") -> psycopg.Connection[TupleRow]:
    """A new synchronous connection, labelled in ``pg_stat_activity`` by ``role``."""
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name=f"{APPLICATION_NAME}:{role}")
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {redact(str(exc)).strip()}") from None


async def connect_async(
    url: str, *, autocommit: bool = True, role: str = "worker"
) -> psycopg.AsyncConnection[TupleRow]:
    """A new asynchronous connection, labelled in ``pg_stat_activity`` by ``role``."""
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, application_name=f"{APPLICATION_NAME}:{role}"
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {redact(str(exc)).strip()}") from None


@contextmanager
def connection(url: str, *, role: str = "client") -> Iterator[psycopg.Connection[TupleRow]]:
    """A short-lived autocommit connection, closed on exit."""
    conn = connect(url, role=role)
    try:
        yield conn
    finally:
        conn.close()
