"""Enqueueing: build job rows and insert them on a pool or on the caller's own connection.

Transactional enqueue writes through the caller's connection without
committing, so the job exists if and only if the caller's transaction commits.
Accepted connections: psycopg ``Connection`` / ``AsyncConnection`` and SQLAlchemy
``Connection`` / ``Session`` (any driver with the ``%(name)s`` paramstyle).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from stem_pg.core.envelope import JobSpec
from stem_pg.core.errors import TaskError
from stem_pg.db.queries import Queries

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
#: Attempts to insert a unique job whose key holder finishes while we look it up.
UNIQUE_ROUNDS = 5

#: A query to run (name, parameters); the driver sends back its rows.
Step = tuple[str, dict[str, Any]]
Rows = list[tuple[Any, ...]]


def insert_sync(conn: Any, queries: Queries, specs: Sequence[JobSpec]) -> list[str]:
    """Insert on a psycopg or SQLAlchemy connection/session; the caller owns the transaction.

    Returns the task id of each spec: its own, or for a unique task whose key is
    held by a live job, that job's id.
    """
    if not specs:
        return []
    if isinstance(conn, psycopg.Connection):
        return insert_planned_sync(conn, queries, specs, len(specs))
    plain, unique = _split(specs)
    sa_connection = _sqlalchemy_connection(conn)
    if plain:
        name, params = _statement(plain)
        sa_connection.exec_driver_sql(queries[name], params)
    return _ids(specs, unique, lambda q, p: list(sa_connection.exec_driver_sql(queries[q], p).fetchall()))


def insert_planned_sync(
    conn: psycopg.Connection[Any],
    queries: Queries,
    planned: Iterable[JobSpec],
    count: int,
    *,
    announce: str | None = None,
) -> list[str]:
    """Insert ``count`` specs on a psycopg connection as ``planned`` yields them; ids as ``insert_sync``.

    From COPY_THRESHOLD specs on, fresh immediate jobs stream into one COPY while
    the rest are still being planned, so the Python work overlaps the server's
    (a bad request raises inside the COPY, which then inserts nothing). Other
    specs (given ids, times, unique keys) follow in the same transaction.
    With ``announce`` (the jobs channel), specs that ``announced_by_insert`` accepts
    wake their workers from the inserting statement.
    """
    if count < COPY_THRESHOLD:
        return _insert_statements(conn, queries, list(planned), announce)
    ids: list[str] = []
    rest: list[tuple[int, JobSpec]] = []
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(queries["job_copy"]) as copy:
            for spec in planned:
                if spec.copyable:
                    copy.write_row(spec.copy_row())
                else:
                    rest.append((len(ids), spec))
                ids.append(spec.id)
        if rest:
            found = _insert_statements(conn, queries, [spec for _, spec in rest])
            for (position, _), task_id in zip(rest, found, strict=True):
                ids[position] = task_id
    return ids


def due_queues(specs: Iterable[JobSpec]) -> set[str]:
    """The queues that got a job it may run now (delayed ones are found by polling)."""
    now = datetime.now(UTC)
    return {s.queue for s in specs if (s.eta is None and not s.countdown) or (s.eta and s.eta <= now)}


def announced_by_insert(specs: Sequence[JobSpec]) -> bool:
    """Whether an insert asked to ``announce`` wakes the workers itself: one job without
    a unique key, inserted by one statement (the caller wakes them for anything else)."""
    return len(specs) == 1 and specs[0].unique_key is None


def _insert_statements(
    conn: psycopg.Connection[Any], queries: Queries, specs: list[JobSpec], announce: str | None = None
) -> list[str]:
    """INSERT statements: one for the plain specs, the unique-key steps for the others."""
    plain, unique = _split(specs)
    if plain:
        name, params = _statement(plain, announce if announced_by_insert(specs) else None)
        conn.execute(queries[name], params)
    return _ids(specs, unique, lambda q, p: conn.execute(queries[q], p).fetchall())


async def insert_async(
    conn: psycopg.AsyncConnection[TupleRow],
    queries: Queries,
    specs: Sequence[JobSpec],
    *,
    announce: str | None = None,
) -> list[str]:
    """Insert on a psycopg async connection; the caller owns the transaction. Ids as
    ``insert_sync``, ``announce`` as in ``insert_planned_sync``."""
    if not specs:
        return []
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TaskError(f"connection must be a psycopg.AsyncConnection, got {type(conn).__name__}")
    plain, unique = _split(specs)
    if plain:
        name, params = _statement(plain, announce if announced_by_insert(specs) else None)
        await conn.execute(queries[name], params)
    found: dict[int, str] = {}
    if unique:
        steps = _unique_steps([specs[i] for i in unique])
        try:
            query, params = next(steps)
            while True:
                rows = await (await conn.execute(queries[query], params)).fetchall()
                query, params = steps.send(rows)
        except StopIteration as done:
            found = dict(zip(unique, done.value, strict=True))
    return [found.get(i, spec.id) for i, spec in enumerate(specs)]


def _split(specs: Sequence[JobSpec]) -> tuple[Sequence[JobSpec], list[int]]:
    """The specs without a unique key (inserted as before) and the positions of the others."""
    unique = [i for i, spec in enumerate(specs) if spec.unique_key is not None]
    if not unique:
        return specs, []
    return [spec for spec in specs if spec.unique_key is None], unique


def _ids(specs: Sequence[JobSpec], unique: list[int], run: Any) -> list[str]:
    """Drive ``_unique_steps`` on a synchronous ``run(query_name, params) -> rows``."""
    if not unique:
        return [spec.id for spec in specs]
    steps = _unique_steps([specs[i] for i in unique])
    try:
        query, params = next(steps)
        while True:
            query, params = steps.send(run(query, params))
    except StopIteration as done:
        found = dict(zip(unique, done.value, strict=True))
    return [found.get(i, spec.id) for i, spec in enumerate(specs)]


def unique_params(specs: Sequence[JobSpec]) -> dict[str, list[Any]]:
    """Parallel arrays for ``job_enqueue_unique``."""
    params = many_params(specs)
    params["unique_key"] = [spec.unique_key for spec in specs]
    params["unique_for"] = [spec.unique_for for spec in specs]
    return params


def _unique_steps(specs: Sequence[JobSpec]) -> Generator[Step, Rows, list[str]]:
    """The statements that insert unique jobs, as a generator the sync and async drivers share.

    Free keys whose ``unique_for`` ran out, insert (a held key or a live id is
    skipped), then read who holds the keys that were skipped. A holder that
    finished in between leaves its key free: those are tried again.
    """
    keys = sorted({spec.unique_key for spec in specs if spec.unique_key is not None})
    yield "job_unique_release", {"keys": keys}
    found: dict[int, str] = {}
    pending = list(range(len(specs)))
    for _ in range(UNIQUE_ROUNDS):
        inserted = {
            row[0] for row in (yield "job_enqueue_unique", unique_params([specs[i] for i in pending]))
        }
        skipped = [i for i in pending if specs[i].id not in inserted]
        found.update({i: specs[i].id for i in pending if specs[i].id in inserted})
        if not skipped:
            break
        wanted = sorted({key for i in skipped if (key := specs[i].unique_key) is not None})
        holders = {row[0]: row[1] for row in (yield "job_unique_holders", {"keys": wanted})}
        pending = []
        for i in skipped:
            holder = holders.get(specs[i].unique_key)
            if holder is not None:
                found[i] = holder
            elif specs[i].id_given:
                found[i] = specs[i].id  # its id is live under another key: idempotent enqueue
            else:
                pending.append(i)
        if not pending:
            break
    return [found.get(i, spec.id) for i, spec in enumerate(specs)]


def _statement(specs: Sequence[JobSpec], announce: str | None = None) -> tuple[str, dict[str, Any]]:
    if len(specs) == 1:
        params = specs[0].params()
        params["channel"] = announce
        return "job_enqueue", params
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
