"""``app.enqueue`` on the pool: one job, planned, inserted and announced without the batch machinery.

A producer that calls ``app.enqueue`` back to back spends as much time in Python
as waiting for its commit (bench/RESULTS.md, "Single enqueue in a loop"), so the
common case skips what ``enqueue_many`` does for batches of any size (generators,
position maps, a context manager per concern): it plans the job before it takes
a connection, then one statement inserts and announces it. What it does is
``enqueue_many``'s for one request: same errors, signals, tracing span, wake-up
and unique-key handling; broadcast-routed and debounced requests, and a caller's
own connection, go through ``enqueue_many``.
"""

from __future__ import annotations

import psycopg

from stem_pg.client.backend import Backend
from stem_pg.client.enqueue import announced_by_insert, enqueue_many, insert_planned_sync
from stem_pg.client.results import TaskResult
from stem_pg.client.waker import Announce
from stem_pg.core.envelope import JobSpec
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.signals import publish_info
from stem_pg.db.missing import not_migrated
from stem_pg.db.stores.enqueue import EnqueueStore


def enqueue_one(backend: Backend, planner: Planner, request: EnqueueRequest) -> TaskResult:
    """Enqueue ``request`` on the pool; its handle (a BroadcastResult when it is routed to a
    broadcast channel)."""
    if request.debounced or planner.broadcast_route(request) is not None:
        return enqueue_many(backend, planner, [request], numbered=False)[0]
    if planner.tracing is not None:
        with planner.tracing.sending(1):  # the span of the insert, current while it is planned
            return _enqueue(backend, planner, request)
    return _enqueue(backend, planner, request)


def _enqueue(backend: Backend, planner: Planner, request: EnqueueRequest) -> TaskResult:
    spec = planner.plan(request)
    signals = backend.signals
    if signals.before_publish:
        signals.before_publish.send(publish_info(spec))
    try:
        task_id = _insert(backend, spec)
    except psycopg.Error as exc:  # as ``stem_pg.db.missing.migrated``
        found = not_migrated(exc, [backend.namespace])
        if found is None:
            raise
        raise found from None
    if signals.after_publish:
        signals.after_publish.send(publish_info(spec, task_id))
    return TaskResult(backend, task_id)


def _insert(backend: Backend, spec: JobSpec) -> str:
    """Insert ``spec`` on a pool connection and wake its workers; the id that holds it."""
    waker = backend.waker
    how = waker.begin()
    try:
        # getconn/putconn rather than ``pool.connection()``: the pool's connections are in
        # autocommit, so the commit or rollback that its context manager adds does nothing.
        pool = backend.pool
        conn = pool.getconn()
        try:
            announce = how is Announce.WITH_INSERT
            if spec.unique_key is None:
                EnqueueStore(backend.queries).enqueue_pooled(conn, spec=spec, announce=announce)
                task_id = spec.id
            else:
                task_id = insert_planned_sync(conn, backend.queries, [spec], 1)[0]
            if not (announce and announced_by_insert([spec])):
                try:  # the job is committed: a failed wake-up must not fail the enqueue
                    backend.wake([spec], conn if announce else None)
                except psycopg.Error:
                    backend.wake([spec])
        except psycopg.errors.ReadOnlySqlTransaction:  # as ``read_only_discarded``
            conn.close()
            raise
        finally:
            pool.putconn(conn)
    finally:
        waker.end()
    return task_id
