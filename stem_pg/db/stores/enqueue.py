"""The enqueue store: inserting jobs and waking their workers, one method per query of ``sql/jobs.sql``.

``EnqueueStore`` runs on a psycopg Connection or, for transactional enqueue,
on a SQLAlchemy Connection/Session (``stem_pg.db.stores.driver``);
``AsyncEnqueueStore`` on a psycopg AsyncConnection. Both are the hot path: each
method is exactly one statement (one round trip), and nothing is read back
that the caller does not need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow, class_row
from psycopg.types.array import ListBinaryDumper

from stem_pg.core.envelope import JobSpec
from stem_pg.db.queries import Queries
from stem_pg.db.stores.driver import execute, fetch_all

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[TupleRow]
CursorT = TypeVar("CursorT", psycopg.Cursor[Any], psycopg.AsyncCursor[Any])

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


@dataclass(frozen=True)
class InsertedJob:
    """A unique job that was inserted (its key and id were free)."""

    id: str


@dataclass(frozen=True)
class UniqueHolder:
    """The live job that holds a unique key."""

    unique_key: str
    id: str


class TextArray(list[str | None]):
    """A ``text[]`` parameter that a ``binary_arrays`` cursor sends in binary."""


def binary_arrays(cur: CursorT) -> CursorT:
    """``cur``, sending ``TextArray`` parameters in binary: the batch inserts' arrays of
    arguments (and headers) are then neither escaped by psycopg nor parsed again by the
    server (``array_in``), which at 100 KB a job cost twice the rest of the insert
    (bench/RESULTS.md, "Large payloads, continued"). Only on psycopg connections: a
    SQLAlchemy connection's driver gets plain lists, in text."""
    cur.adapters.register_dumper(TextArray, ListBinaryDumper)
    return cur


def _binary(params: dict[str, list[Any]]) -> dict[str, list[Any]]:
    params["args"] = TextArray(params["args"])
    params["headers"] = TextArray(params["headers"])
    return params


def many_params(specs: Sequence[JobSpec]) -> dict[str, list[Any]]:
    """Parallel arrays for ``job_enqueue_many``."""
    rows = [spec.params() for spec in specs]
    return {column: [row[column] for row in rows] for column in _MANY_COLUMNS}


def unique_params(specs: Sequence[JobSpec]) -> dict[str, list[Any]]:
    """Parallel arrays for ``job_enqueue_unique``."""
    params = many_params(specs)
    params["unique_key"] = [spec.unique_key for spec in specs]
    params["unique_for"] = [spec.unique_for for spec in specs]
    return params


def _one(spec: JobSpec, channel: str | None) -> dict[str, Any]:
    params = spec.params()
    params["channel"] = channel
    return params


#: The connection attribute where ``EnqueueStore.enqueue_pooled`` keeps its cursor.
_CURSOR = "_stem_enqueue_cursor"


class EnqueueStore:
    """Enqueue queries of one namespace on a synchronous connection the caller owns."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    def quiet_inserts(self, conn: Conn) -> None:
        """Make ``conn``'s inserts leave their wake-up to the client (``client_notifies``)."""
        conn.execute(self.q["client_notifies"])

    def enqueue(self, conn: Any, *, spec: JobSpec, announce: bool = False) -> None:
        """Insert one job (``job_enqueue``); ``announce``: the statement wakes its queue itself."""
        execute(conn, self.q["job_enqueue"], _one(spec, self.q.channels.jobs if announce else None))

    def enqueue_pooled(self, conn: Conn, *, spec: JobSpec, announce: bool = False) -> None:
        """``enqueue`` on one of the application's pool connections, through a cursor kept
        with it: psycopg builds a cursor (and its adapters) per ``conn.execute``, which cost
        as much as the rest of the statement's client side (bench/RESULTS.md, enqloop)."""
        cursor: psycopg.Cursor[Any] | None = getattr(conn, _CURSOR, None)
        if cursor is None or cursor.closed:
            cursor = conn.cursor()
            setattr(conn, _CURSOR, cursor)  # an attribute, not a weak map: the cursor refers to conn
        cursor.execute(self.q["job_enqueue"], _one(spec, self.q.channels.jobs if announce else None))

    def enqueue_many(self, conn: Any, *, specs: Sequence[JobSpec]) -> None:
        """Insert jobs without unique keys in one statement (``job_enqueue_many``)."""
        if isinstance(conn, psycopg.Connection):
            with binary_arrays(conn.cursor()) as cur:
                cur.execute(self.q["job_enqueue_many"], _binary(many_params(specs)))
        else:
            execute(conn, self.q["job_enqueue_many"], many_params(specs))

    def copy(self, conn: Conn, *, rows: Iterable[tuple[object, ...]]) -> None:
        """Stream ``JobSpec.copy_row()`` rows into one COPY (``job_copy``); an exception
        raised by ``rows`` aborts it."""
        with conn.cursor() as cur, cur.copy(self.q["job_copy"]) as copy:
            for row in rows:
                copy.write_row(row)

    def release_unique(self, conn: Any, *, keys: Sequence[str]) -> None:
        """Free the unique keys whose ``unique_for`` ran out (``job_unique_release``)."""
        execute(conn, self.q["job_unique_release"], {"keys": list(keys)})

    def enqueue_unique(self, conn: Any, *, specs: Sequence[JobSpec]) -> set[str]:
        """Insert jobs with unique keys (``job_enqueue_unique``); the ids actually inserted."""
        if isinstance(conn, psycopg.Connection):
            with binary_arrays(conn.cursor(row_factory=class_row(InsertedJob))) as cur:
                cur.execute(self.q["job_enqueue_unique"], _binary(unique_params(specs)))
                return {row.id for row in cur.fetchall()}
        rows = fetch_all(conn, self.q["job_enqueue_unique"], unique_params(specs), InsertedJob)
        return {row.id for row in rows}

    def unique_holders(self, conn: Any, *, keys: Sequence[str]) -> list[UniqueHolder]:
        """Which live job holds each of ``keys`` (``job_unique_holders``)."""
        return fetch_all(conn, self.q["job_unique_holders"], {"keys": list(keys)}, UniqueHolder)

    def wake(self, conn: Conn, *, queues: Sequence[str]) -> None:
        """Wake the workers of ``queues`` (``job_wake``)."""
        conn.execute(self.q["job_wake"], {"channel": self.q.channels.jobs, "queues": list(queues)})


class AsyncEnqueueStore:
    """The same queries on an asynchronous psycopg connection."""

    def __init__(self, queries: Queries) -> None:
        self.q = queries

    async def quiet_inserts(self, conn: AsyncConn) -> None:
        await conn.execute(self.q["client_notifies"])

    async def enqueue(self, conn: AsyncConn, *, spec: JobSpec, announce: bool = False) -> None:
        await conn.execute(self.q["job_enqueue"], _one(spec, self.q.channels.jobs if announce else None))

    async def enqueue_many(self, conn: AsyncConn, *, specs: Sequence[JobSpec]) -> None:
        async with binary_arrays(conn.cursor()) as cur:
            await cur.execute(self.q["job_enqueue_many"], _binary(many_params(specs)))

    async def release_unique(self, conn: AsyncConn, *, keys: Sequence[str]) -> None:
        await conn.execute(self.q["job_unique_release"], {"keys": list(keys)})

    async def enqueue_unique(self, conn: AsyncConn, *, specs: Sequence[JobSpec]) -> set[str]:
        async with binary_arrays(conn.cursor(row_factory=class_row(InsertedJob))) as cur:
            await cur.execute(self.q["job_enqueue_unique"], _binary(unique_params(specs)))
            return {row.id for row in await cur.fetchall()}

    async def unique_holders(self, conn: AsyncConn, *, keys: Sequence[str]) -> list[UniqueHolder]:
        async with conn.cursor(row_factory=class_row(UniqueHolder)) as cur:
            await cur.execute(self.q["job_unique_holders"], {"keys": list(keys)})
            return await cur.fetchall()

    async def wake(self, conn: AsyncConn, *, queues: Sequence[str]) -> None:
        await conn.execute(self.q["job_wake"], {"channel": self.q.channels.jobs, "queues": list(queues)})
