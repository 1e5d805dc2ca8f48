"""Enqueueing: insert planned jobs on a pool or on the caller's own connection, and wake their workers.

Transactional enqueue writes through the caller's connection without
committing, so the job exists if and only if the caller's transaction commits.
Accepted connections: psycopg ``Connection`` / ``AsyncConnection``, SQLAlchemy
``Connection`` / ``Session`` (any driver with the ``%(name)s`` paramstyle), Django's
database connection on psycopg 3 (``stem_pg.client.native``), and for the async twins
SQLAlchemy ``AsyncSession`` / ``AsyncConnection`` on psycopg.

This is the hot path: a single job is one statement (which may announce
itself), a batch one statement, a large batch one COPY that streams while the
rest is still being planned. The SQL is the enqueue store's
(``stem_pg.db.stores.enqueue``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import TupleRow

from stem_pg.client.backend import Backend, aread_only_discarded, read_only_discarded
from stem_pg.client.broadcasts import merge_results, publish_async, publish_sync
from stem_pg.client.debounce import Debounced, plan_debounced, upsert_async, upsert_sync
from stem_pg.client.native import driver_connection
from stem_pg.client.results import TaskResult
from stem_pg.client.waker import Announce
from stem_pg.core.envelope import JobSpec
from stem_pg.core.errors import TaskError
from stem_pg.core.planning import BroadcastSpec, EnqueueRequest, Planner
from stem_pg.core.signals import PublishInfo, Signal, publish_info
from stem_pg.core.storable import shown
from stem_pg.db.missing import migrated
from stem_pg.db.queries import Queries
from stem_pg.db.stores.driver import async_driver_connection
from stem_pg.db.stores.enqueue import AsyncEnqueueStore, EnqueueStore, UniqueHolder

#: Below this many rows a plain INSERT is as fast as COPY.
COPY_THRESHOLD = 200
#: Attempts to insert a unique job whose key holder finishes while we look it up.
UNIQUE_ROUNDS = 5

Request = EnqueueRequest | tuple[str, Mapping[str, Any]]


# -- enqueue_many, sync and async ---------------------------------------------------------
#
# Both twins insert the queue jobs (and wake their workers) first and publish the requests
# routed to broadcast channels after. Planning a large sync batch is streamed into its COPY,
# so an invalid request is only found during the insert: publishing after it means a bad
# batch raises before any message went out, and a job batch is never half-published.


def enqueue_many(
    backend: Backend,
    planner: Planner,
    requests: Iterable[Request],
    *,
    connection: Any = None,
    numbered: bool = True,
) -> list[TaskResult]:
    """Insert the jobs among ``requests`` in one statement (one wake-up per queue), then
    publish those routed to broadcast channels; handles in request order. With ``numbered``
    an invalid request's error names its position; nothing of the batch is written then."""
    connection = driver_connection(connection)  # django.db.connection: its psycopg connection
    items = [_request(i, r) for i, r in enumerate(requests)]
    routed = planner.plan_routed(items, numbered=numbered)
    debounced = _debounced(planner, items, connection, numbered)
    queued = len(items) - len(routed)
    if planner.tracing is not None and queued:
        with planner.tracing.sending(queued):  # the span of the insert (stem_pg.tracing)
            return _enqueue_sync(backend, planner, items, routed, connection, numbered, debounced)
    return _enqueue_sync(backend, planner, items, routed, connection, numbered, debounced)


def _enqueue_sync(
    backend: Backend,
    planner: Planner,
    items: list[EnqueueRequest],
    routed: dict[int, BroadcastSpec],
    connection: Any,
    numbered: bool,
    debounced: Mapping[int, Debounced],
) -> list[TaskResult]:
    skip = {**routed, **debounced}
    queued = len(items) - len(skip)
    specs: list[JobSpec] = []
    planned = _recorded(_plan(planner, items, skip, numbered), specs)
    if backend.signals.before_publish:
        planned = _before_publish(backend.signals.before_publish, planned)
    if not queued:
        ids: list[str] = []
    elif connection is None:
        with (
            migrated(backend.namespace),
            backend.waker.enqueueing() as how,
            backend.pool.connection() as conn,
            read_only_discarded(conn),
        ):
            announce = how is Announce.WITH_INSERT
            ids = insert_planned_sync(conn, backend.queries, planned, queued, announce=announce)
            if not (announce and announced_by_insert(specs)):
                try:  # the jobs are committed: a failed wake-up must not fail the enqueue
                    backend.wake(specs, conn if how is not Announce.BY_WAKER else None)
                except psycopg.Error:
                    backend.wake(specs)
    else:
        with migrated(backend.namespace):
            if isinstance(connection, psycopg.Connection):
                ids = insert_planned_sync(connection, backend.queries, planned, queued)
            else:
                ids = insert_sync(connection, backend.queries, list(planned))
        backend.wake(specs, connection)
    if backend.signals.after_publish:
        for spec, task_id in zip(specs, ids, strict=True):
            backend.signals.after_publish.send(publish_info(spec, task_id))
    placed = {i: upsert_sync(backend, planner, item) for i, item in debounced.items()}
    published = publish_sync(backend, routed, connection)
    return merge_results(backend, ids, {**published, **placed})


async def aenqueue_many(
    backend: Backend,
    planner: Planner,
    requests: Iterable[Request],
    *,
    connection: Any = None,
    numbered: bool = True,
) -> list[TaskResult]:
    """The async twin of ``enqueue_many`` (``connection``: a psycopg AsyncConnection, or a
    SQLAlchemy AsyncSession/AsyncConnection on psycopg: the job commits with it)."""
    if connection is not None:
        connection = await async_driver_connection(connection)
    items = [_request(i, r) for i, r in enumerate(requests)]
    routed = planner.plan_routed(items, numbered=numbered)
    debounced = _debounced(planner, items, connection, numbered)
    if planner.tracing is not None and len(items) > len(routed):
        with planner.tracing.sending(len(items) - len(routed)):  # as in enqueue_many
            return await _enqueue_async(backend, planner, items, routed, connection, numbered, debounced)
    return await _enqueue_async(backend, planner, items, routed, connection, numbered, debounced)


async def _enqueue_async(
    backend: Backend,
    planner: Planner,
    items: list[EnqueueRequest],
    routed: dict[int, BroadcastSpec],
    connection: Any,
    numbered: bool,
    debounced: Mapping[int, Debounced],
) -> list[TaskResult]:
    specs = list(_plan(planner, items, {**routed, **debounced}, numbered))
    signals = backend.signals
    for spec in specs if signals.before_publish else ():
        await signals.before_publish.asend(publish_info(spec))
    if not specs:
        ids: list[str] = []
    elif connection is not None:
        with migrated(backend.namespace):
            ids = await insert_async(connection, backend.queries, specs)
        await backend.awake(specs, connection)
    else:
        with migrated(backend.namespace), backend.waker.enqueueing() as how:
            async with (await backend.apool()).connection() as conn, aread_only_discarded(conn):
                announce = how is Announce.WITH_INSERT
                ids = await insert_async(conn, backend.queries, specs, announce=announce)
                if not (announce and announced_by_insert(specs)):
                    try:  # as in enqueue_many
                        await backend.awake(specs, conn if how is not Announce.BY_WAKER else None)
                    except psycopg.Error:
                        await backend.awake(specs)
    for spec, task_id in zip(specs, ids, strict=True) if signals.after_publish else ():
        await signals.after_publish.asend(publish_info(spec, task_id))
    placed = {i: await upsert_async(backend, planner, item) for i, item in debounced.items()}
    published = await publish_async(backend, routed, connection)
    return merge_results(backend, ids, {**published, **placed})


def _before_publish(signal: Signal[PublishInfo], specs: Iterable[JobSpec]) -> Iterator[JobSpec]:
    """Pass ``specs`` through, sending ``before_publish`` for each as it is planned."""
    for spec in specs:
        signal.send(publish_info(spec))
        yield spec


def _recorded(specs: Iterable[JobSpec], into: list[JobSpec]) -> Iterator[JobSpec]:
    """Pass ``specs`` through, keeping each in ``into`` (for the wake-up after the insert)."""
    for spec in specs:
        into.append(spec)
        yield spec


def _plan(
    planner: Planner, items: list[EnqueueRequest], skip: Mapping[int, object], numbered: bool
) -> Iterator[JobSpec]:
    """The queue jobs among ``items`` (but those at the positions in ``skip``: broadcast and
    debounced ones), planned lazily (see ``Planner.plan_batch``)."""
    if numbered:
        return planner.plan_batch(items, skip=skip)
    return (planner.plan(r) for i, r in enumerate(items) if i not in skip)


def _debounced(
    planner: Planner, items: list[EnqueueRequest], connection: Any, numbered: bool
) -> dict[int, Debounced]:
    """The debounced requests (each replaces its key's waiting job, after the batch's insert;
    stem_pg.client.debounce), checked before anything is written."""
    if not any(r.debounced for r in items):
        return {}
    return plan_debounced(planner, items, connection=connection, numbered=numbered)


def _request(index: int, item: Request) -> EnqueueRequest:
    if isinstance(item, EnqueueRequest):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        return EnqueueRequest(item[0], item[1])
    raise TaskError(f"enqueue_many item {index}: not an EnqueueRequest or (task, kwargs) pair: {shown(item)}")


# -- inserting ----------------------------------------------------------------------------


def insert_sync(conn: Any, queries: Queries, specs: Sequence[JobSpec]) -> list[str]:
    """Insert on a psycopg or SQLAlchemy connection/session; the caller owns the transaction.

    Returns the task id of each spec: its own, or for a unique task whose key is
    held by a live job, that job's id. Raises TaskError for another kind of connection.
    """
    if not specs:
        return []
    if isinstance(conn, psycopg.Connection):
        return insert_planned_sync(conn, queries, specs, len(specs))
    return _insert_statements(conn, EnqueueStore(queries), specs)


def insert_planned_sync(
    conn: psycopg.Connection[Any],
    queries: Queries,
    planned: Iterable[JobSpec],
    count: int,
    *,
    announce: bool = False,
) -> list[str]:
    """Insert ``count`` specs on a psycopg connection as ``planned`` yields them; ids as ``insert_sync``.

    From COPY_THRESHOLD specs on, fresh immediate jobs stream into one COPY while
    the rest are still being planned, so the Python work overlaps the server's
    (a bad request raises inside the COPY, which then inserts nothing). Other
    specs (given ids, times, unique keys) follow in the same transaction.
    With ``announce``, specs that ``announced_by_insert`` accepts wake their
    workers from the inserting statement.
    """
    store = EnqueueStore(queries)
    if count < COPY_THRESHOLD:
        return _insert_statements(conn, store, list(planned), announce)
    ids: list[str] = []
    rest: list[tuple[int, JobSpec]] = []
    block: AbstractContextManager[object] = conn.transaction()
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        # No transaction begun on a connection outside autocommit (the first statement of a
        # Django atomic() block): a psycopg block would BEGIN and COMMIT on its own, before the
        # caller decides. Plan first (a bad request raises before the caller's transaction
        # begins), then let the statements begin it.
        planned, block = list(planned), nullcontext()
    with block:
        store.copy(conn, rows=_copy_rows(planned, ids, rest))
        if rest:
            found = _insert_statements(conn, store, [spec for _, spec in rest])
            for (position, _), task_id in zip(rest, found, strict=True):
                ids[position] = task_id
    return ids


def _copy_rows(
    planned: Iterable[JobSpec], ids: list[str], rest: list[tuple[int, JobSpec]]
) -> Iterator[tuple[object, ...]]:
    """The COPY rows of the copyable specs; every id goes to ``ids``, the other specs to ``rest``."""
    for spec in planned:
        if spec.copyable:
            yield spec.copy_row()
        else:
            rest.append((len(ids), spec))
        ids.append(spec.id)


def announced_by_insert(specs: Sequence[JobSpec]) -> bool:
    """Whether an insert asked to ``announce`` wakes the workers itself: one job without
    a unique key, inserted by one statement (the caller wakes them for anything else)."""
    return len(specs) == 1 and specs[0].unique_key is None


def _insert_statements(
    conn: Any, store: EnqueueStore, specs: Sequence[JobSpec], announce: bool = False
) -> list[str]:
    """INSERT statements: one for the plain specs, the unique-key steps for the others."""
    plain, unique = _split(specs)
    if len(plain) == 1:
        store.enqueue(conn, spec=plain[0], announce=announce and announced_by_insert(specs))
    elif plain:
        store.enqueue_many(conn, specs=plain)
    if not unique:
        return [spec.id for spec in specs]
    steps = _unique_steps([specs[i] for i in unique])
    try:
        step = next(steps)
        while True:
            step = steps.send(step.run(store, conn))
    except StopIteration as done:
        return _placed(specs, unique, done.value)


async def insert_async(
    conn: psycopg.AsyncConnection[TupleRow],
    queries: Queries,
    specs: Sequence[JobSpec],
    *,
    announce: bool = False,
) -> list[str]:
    """Insert on a psycopg async connection; the caller owns the transaction. Ids as
    ``insert_sync``, ``announce`` as in ``insert_planned_sync``."""
    if not specs:
        return []
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TaskError(f"connection must be a psycopg.AsyncConnection, got {type(conn).__name__}")
    store = AsyncEnqueueStore(queries)
    plain, unique = _split(specs)
    if len(plain) == 1:
        await store.enqueue(conn, spec=plain[0], announce=announce and announced_by_insert(specs))
    elif plain:
        await store.enqueue_many(conn, specs=plain)
    if not unique:
        return [spec.id for spec in specs]
    steps = _unique_steps([specs[i] for i in unique])
    try:
        step = next(steps)
        while True:
            step = steps.send(await step.arun(store, conn))
    except StopIteration as done:
        return _placed(specs, unique, done.value)


def _split(specs: Sequence[JobSpec]) -> tuple[Sequence[JobSpec], list[int]]:
    """The specs without a unique key (inserted as before) and the positions of the others."""
    unique = [i for i, spec in enumerate(specs) if spec.unique_key is not None]
    if not unique:
        return specs, []
    return [spec for spec in specs if spec.unique_key is None], unique


def _placed(specs: Sequence[JobSpec], unique: list[int], found: list[str]) -> list[str]:
    """Every spec's id, with the unique ones' ids as ``_unique_steps`` found them."""
    by_position = dict(zip(unique, found, strict=True))
    return [by_position.get(i, spec.id) for i, spec in enumerate(specs)]


# -- unique tasks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One statement of ``_unique_steps``: ``store.<method>(conn, **args)``, sync or async."""

    method: Literal["release_unique", "enqueue_unique", "unique_holders"]
    args: dict[str, Any]

    def run(self, store: EnqueueStore, conn: Any) -> Any:
        return getattr(store, self.method)(conn, **self.args)

    async def arun(self, store: AsyncEnqueueStore, conn: Any) -> Any:
        return await getattr(store, self.method)(conn, **self.args)


def _unique_steps(specs: Sequence[JobSpec]) -> Generator[_Step, Any, list[str]]:
    """The statements that insert unique jobs, as a generator the sync and async drivers share.

    Free keys whose ``unique_for`` ran out, insert (a held key or a live id is
    skipped), then read who holds the keys that were skipped. A holder that
    finished in between leaves its key free: those are tried again.
    """
    keys = sorted({spec.unique_key for spec in specs if spec.unique_key is not None})
    yield _Step("release_unique", {"keys": keys})
    found: dict[int, str] = {}
    pending = list(range(len(specs)))
    for _ in range(UNIQUE_ROUNDS):
        inserted: set[str] = yield _Step("enqueue_unique", {"specs": [specs[i] for i in pending]})
        skipped = [i for i in pending if specs[i].id not in inserted]
        found.update({i: specs[i].id for i in pending if specs[i].id in inserted})
        if not skipped:
            break
        wanted = sorted({key for i in skipped if (key := specs[i].unique_key) is not None})
        holding: list[UniqueHolder] = yield _Step("unique_holders", {"keys": wanted})
        holders = {h.unique_key: h.id for h in holding}
        pending = []
        for i in skipped:
            holder = holders.get(specs[i].unique_key or "")
            if holder is not None:
                found[i] = holder
            elif specs[i].id_given:
                found[i] = specs[i].id  # its id is live under another key: idempotent enqueue
            else:
                pending.append(i)
        if not pending:
            break
    return [found.get(i, spec.id) for i, spec in enumerate(specs)]
