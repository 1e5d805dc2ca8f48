"""Running a store's query on the caller's own connection: psycopg, or SQLAlchemy.

Transactional enqueue and publish write through whatever connection the
application holds, so the write commits or rolls back with the application's
own work. SQLAlchemy connections are driven with ``exec_driver_sql`` (any
driver with the ``%(name)s`` paramstyle); rows come back as the store's typed rows.
"""

from __future__ import annotations

from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import class_row

from stem_pg.core.errors import TaskError

R = TypeVar("R")


def sqlalchemy_connection(conn: Any) -> Any:
    """The SQLAlchemy Connection behind ``conn`` (a Connection or a Session).

    Raises TaskError for anything else: the caller passed a connection stem_pg cannot write on.
    """
    try:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        Connection = Session = ()  # type: ignore[assignment,misc]
    if isinstance(conn, Session):
        return conn.connection()
    if isinstance(conn, Connection):
        return conn
    raise TaskError(
        "connection must be a psycopg Connection or a SQLAlchemy Connection/Session,"
        f" got {type(conn).__name__}"
    )


async def async_driver_connection(conn: Any) -> Any:
    """The psycopg AsyncConnection to write on for ``conn``: itself, or the one under a
    SQLAlchemy ``AsyncSession`` / ``AsyncConnection`` (its transaction begun, as
    ``session.connection()`` does), so the write commits or rolls back with the session.

    Raises TaskError for anything else, asyncpg sessions included (stem_pg speaks psycopg:
    ``postgresql+psycopg://``).
    """
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    if type(conn).__module__.startswith("sqlalchemy."):
        from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

        if isinstance(conn, AsyncSession):
            conn = await conn.connection()
        if isinstance(conn, AsyncConnection):
            raw = (await conn.get_raw_connection()).driver_connection
            if isinstance(raw, psycopg.AsyncConnection):
                return raw
            driver = conn.dialect.driver
            raise TaskError(
                f"connection: a SQLAlchemy async session on driver {driver!r}; stem_pg writes through"
                " psycopg 3: create its engine with a postgresql+psycopg:// URL"
            )
    raise TaskError(
        "connection must be a psycopg AsyncConnection or a SQLAlchemy AsyncSession/AsyncConnection,"
        f" got {type(conn).__name__}"
    )


def execute(conn: Any, query: LiteralString, params: dict[str, Any]) -> None:
    """Run ``query`` on a psycopg Connection or a SQLAlchemy Connection/Session."""
    if isinstance(conn, psycopg.Connection):
        conn.execute(query, params)
    else:
        sqlalchemy_connection(conn).exec_driver_sql(query, params)


def fetch_all(conn: Any, query: LiteralString, params: dict[str, Any], row: type[R]) -> list[R]:
    """Run ``query`` and read its rows as ``row`` (a dataclass whose fields are the columns)."""
    if isinstance(conn, psycopg.Connection):
        with conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(query, params)
            return cur.fetchall()
    result = sqlalchemy_connection(conn).exec_driver_sql(query, params)
    return [row(**found._mapping) for found in result.fetchall()]


def fetch_one(conn: Any, query: LiteralString, params: dict[str, Any], row: type[R]) -> R | None:
    """Run ``query`` and read its first row as ``row``, or None when it returns none."""
    if isinstance(conn, psycopg.Connection):
        with conn.cursor(row_factory=class_row(row)) as cur:
            cur.execute(query, params)
            return cur.fetchone()
    found = sqlalchemy_connection(conn).exec_driver_sql(query, params).fetchone()
    return None if found is None else row(**found._mapping)
