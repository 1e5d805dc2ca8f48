"""Enqueueing: build job rows and insert them on a pool or on the caller's own connection.

Transactional enqueue writes through the caller's connection without
committing, so the job exists if and only if the caller's transaction commits.
Accepted connections: psycopg ``Connection`` / ``AsyncConnection`` and SQLAlchemy
``Connection`` / ``Session`` (any driver with the ``%(name)s`` paramstyle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from stem_pg.core.envelope import JobSpec
from stem_pg.core.errors import TaskError
from stem_pg.queries import Queries

_MANY_COLUMNS = (
    "id",
    "task",
    "queue",
    "priority",
    "args",
    "headers",
    "max_retries",
    "eta",
    "countdown",
    "expires_at",
    "expires_in",
    "visibility_timeout",
    "acks_late",
)


def many_params(specs: Sequence[JobSpec]) -> dict[str, list[Any]]:
    """Parallel arrays for ``job_enqueue_many``."""
    rows = [spec.params() for spec in specs]
    return {column: [row[column] for row in rows] for column in _MANY_COLUMNS}


#: Below this many rows a plain INSERT is as fast as COPY.
COPY_THRESHOLD = 200


def insert_sync(conn: Any, queries: Queries, specs: Sequence[JobSpec]) -> None:
    """Insert on a psycopg or SQLAlchemy connection/session; the caller owns the transaction."""
    if not specs:
        return
    if isinstance(conn, psycopg.Connection):
        _insert_psycopg(conn, queries, specs)
        return
    name, params = _statement(specs)
    query = queries[name]
    sa_connection = _sqlalchemy_connection(conn)
    sa_connection.exec_driver_sql(query, params)


def _insert_psycopg(conn: psycopg.Connection[Any], queries: Queries, specs: Sequence[JobSpec]) -> None:
    copyable = [spec for spec in specs if spec.copyable]
    if len(copyable) < COPY_THRESHOLD:
        name, params = _statement(specs)
        conn.execute(queries[name], params)
        return
    rest = [spec for spec in specs if not spec.copyable]
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(queries["job_copy"]) as copy:
            for spec in copyable:
                copy.write_row(spec.copy_row())
        if rest:
            name, params = _statement(rest)
            cur.execute(queries[name], params)


async def insert_async(
    conn: psycopg.AsyncConnection[TupleRow], queries: Queries, specs: Sequence[JobSpec]
) -> None:
    """Insert on a psycopg async connection; the caller owns the transaction."""
    if not specs:
        return
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TaskError(f"connection must be a psycopg.AsyncConnection, got {type(conn).__name__}")
    name, params = _statement(specs)
    await conn.execute(queries[name], params)


def _statement(specs: Sequence[JobSpec]) -> tuple[str, dict[str, Any]]:
    if len(specs) == 1:
        return "job_enqueue", specs[0].params()
    return "job_enqueue_many", many_params(specs)


def _sqlalchemy_connection(conn: Any) -> Any:
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
