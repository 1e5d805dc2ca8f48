"""Rescuer, expiry and pruning, driven by run_once on stale rows we build (no sleeping)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.core.vacuum import VacuumPolicy
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rows import Finish
from stem_pg.db.stores.vacuum import VacuumStore
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.vacuum import JobsVacuum


def _q(text: str, ns: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(ns))


async def _claim(app: Stem, store: JobStore, conn: psycopg.AsyncConnection, limit: int = 10) -> str:
    token = str(uuid.uuid4())
    jobs = await store.claim(
        conn, queue="default", limit=limit, worker_id="w1", token=token, lease_seconds=30
    )
    assert jobs
    return token


async def test_expired_leases_are_requeued_or_failed(app: Stem, database_url: str) -> None:
    @app.task(name="at_most_once", acks_late=False)
    def once() -> None: ...

    app.enqueue("plain", {}, task_id="requeue-me")
    app.enqueue("at_most_once", {}, task_id="fail-me")
    app.enqueue("plain", {}, task_id="exhausted")
    store = JobStore(app.queries, result_ttl=60)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(_q("UPDATE {ns}.jobs SET max_retries = 0 WHERE id = 'exhausted'", app.namespace))
        token = await _claim(app, store, conn)
        await conn.execute(
            _q("UPDATE {ns}.jobs SET lease_expires_at = now() - interval '1 second'", app.namespace)
        )
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(app.queries.channels.done)))
        woken: list[bool] = []
        report = await Maintenance(
            store, WorkerSettings(queues=("default",)), on_requeued=lambda: woken.append(True)
        ).run_once(conn)
        assert (report.requeued, report.lease_failed) == (1, 2)
        assert woken == [True]
        note = await anext(conn.notifies(timeout=2))
        assert set(note.payload.split(",")) == {"fail-me", "exhausted"}
        cur = await conn.execute(
            _q("SELECT id, state, attempts FROM {ns}.task_states ORDER BY id", app.namespace)
        )
        assert await cur.fetchall() == [
            ("exhausted", "failed", 1),
            ("fail-me", "failed", 1),
            ("requeue-me", "retried", 1),
        ]
        cur = await conn.execute(
            _q("SELECT task_id, reason FROM {ns}.dead_letters ORDER BY task_id", app.namespace)
        )
        assert await cur.fetchall() == [("exhausted", "lease_expired"), ("fail-me", "lease_expired")]
        # The old lease holder can no longer finish the rescued job.
        finished = await store.finish(conn, outcomes=[Finish("requeue-me", token, "succeeded", result="1")])
        assert finished == 0


async def test_expired_jobs_are_cancelled_and_results_pruned(app: Stem, database_url: str) -> None:
    app.enqueue("t", {}, task_id="stale", expires=0.01)
    await asyncio.sleep(0.05)
    store = JobStore(app.queries, result_ttl=0)
    ticks = iter([0.0, 10.0, 1000.0])
    maintenance = Maintenance(
        store, WorkerSettings(queues=("default",), prune_interval=100), clock=lambda: next(ticks)
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        first = await maintenance.run_once(conn)
        assert first.cancelled == 1
        cur = await conn.execute(_q("SELECT state FROM {ns}.results WHERE id = 'stale'", app.namespace))
        assert await cur.fetchone() == ("cancelled",)
        assert first.pruned == 0  # the prune interval had not passed yet
        await asyncio.sleep(0.01)
        assert (await maintenance.run_once(conn)).pruned == 1


async def _expired_results(conn: psycopg.AsyncConnection, ns: str, n: int) -> None:
    await conn.execute(
        _q(
            "INSERT INTO {ns}.results (id, task, queue, priority, state, attempts, enqueued_at, expires_at)"
            " SELECT 'old-' || i, 't', 'default', 0, 'succeeded', 1, now(), now() - interval '1 hour'"
            " FROM generate_series(1, %(n)s) AS i",
            ns,
        ),
        {"n": n},
    )


def _clock(start: float = 0.0) -> Callable[[], float]:
    ticks = iter([start, *(1000.0 + i for i in range(100))])  # the first pass is due, then 1 s apart
    return lambda: next(ticks)


async def test_one_pass_prunes_every_expired_result_in_batches(app: Stem, database_url: str) -> None:
    """More expired results than a batch: the pass keeps going while batches come back full
    (it used to prune one batch a prune interval, whatever was left)."""
    settings = WorkerSettings(queues=("default",), prune_interval=100)
    maintenance = Maintenance(JobStore(app.queries, result_ttl=60), settings, clock=_clock())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _expired_results(conn, app.namespace, 12_000)  # over two batches of 5000
        assert (await maintenance.run_once(conn)).pruned == 12_000
        cur = await conn.execute(_q("SELECT count(*) FROM {ns}.results", app.namespace))
        assert await cur.fetchone() == (0,)


async def test_a_pass_out_of_budget_leaves_the_rest_to_the_next_pass(app: Stem, database_url: str) -> None:
    """With its budget spent and batches still full, the next pass (not the next prune
    interval) goes on; once caught up, pruning waits for the interval again."""
    settings = WorkerSettings(queues=("default",), prune_interval=100)
    store = JobStore(app.queries, result_ttl=60)
    maintenance = Maintenance(store, settings, clock=_clock(), prune_batch=5, prune_budget=0.0)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await _expired_results(conn, app.namespace, 12)
        assert [(await maintenance.run_once(conn)).pruned for _ in range(3)] == [5, 5, 2]
        await _expired_results(conn, app.namespace, 3)  # 1 s after the last pass: not due
        assert (await maintenance.run_once(conn)).pruned == 0


@pytest.mark.parametrize("vt", [1])
async def test_short_visibility_timeout_is_heartbeated(app: Stem, vt: int) -> None:
    from tests.helpers import running_worker

    @app.task(name="slowish", visibility_timeout=vt)
    async def slowish() -> str:
        await asyncio.sleep(2.5)
        return "done"

    with running_worker(app, maintenance_interval=0.3):
        handle = await app.aenqueue("slowish")
        assert await handle.wait(timeout=15) == "done"
        status = handle.status()
        assert status is not None and status.attempts == 1
    await app.aclose()


def _vacuum_count(db: psycopg.Connection, namespace: str) -> int:
    row = db.execute(
        "SELECT vacuum_count FROM pg_stat_all_tables WHERE schemaname = %s AND relname = 'jobs'",
        (namespace,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _leave_dead_rows(db: psycopg.Connection, namespace: str, jobs: int) -> None:
    """Insert, update and delete ``jobs`` rows (two dead versions each), then publish the counts."""
    db.execute(
        _q(
            "INSERT INTO {ns}.jobs (id, task, queue) SELECT 'dead-' || n, 't', 'default'"
            " FROM generate_series(1, %s) AS n",
            namespace,
        ),
        (jobs,),
    )
    db.execute(_q("UPDATE {ns}.jobs SET state = 'running'", namespace))
    db.execute(_q("DELETE FROM {ns}.jobs", namespace))
    db.execute("SELECT pg_stat_force_next_flush()")  # statistics go out at the end of this statement


def _vacuum_if_due(app: Stem, *, base: int, scale: float) -> JobsVacuum:
    """A worker's vacuum with the threshold ``base`` + ``scale`` x live rows, and no memory yet."""
    return JobsVacuum(VacuumStore(app.queries), VacuumPolicy(base=base, scale=scale))


async def test_jobs_table_is_vacuumed_once_dead_rows_pile_up(
    app: Stem,
    database_url: str,
    db: psycopg.Connection,
) -> None:
    store = VacuumStore(app.queries)
    _leave_dead_rows(db, app.namespace, 50)
    before = _vacuum_count(db, app.namespace)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await _vacuum_if_due(app, base=1000, scale=0).run_once(conn) == 0  # 100 dead rows: not yet
        assert _vacuum_count(db, app.namespace) == before
        lock = "SELECT pg_advisory_lock(hashtextextended('stem_pg:vacuum:' || %s, 0))"
        db.execute(lock, (app.namespace,))  # another worker is vacuuming it
        assert await _vacuum_if_due(app, base=100, scale=0).run_once(conn) == 0
        assert _vacuum_count(db, app.namespace) == before
        db.execute(lock.replace("pg_advisory_lock", "pg_advisory_unlock"), (app.namespace,))
        assert await _vacuum_if_due(app, base=100, scale=0).run_once(conn) == 100
        assert _vacuum_count(db, app.namespace) == before + 1
        try_lock = lock.replace("pg_advisory_lock", "pg_try_advisory_lock")
        assert db.execute(try_lock, (app.namespace,)).fetchone() == (True,)  # it let go
        db.execute(lock.replace("pg_advisory_lock", "pg_advisory_unlock"), (app.namespace,))
        assert await _vacuum_if_due(app, base=1, scale=0).run_once(conn) == 0  # the vacuum cleared them

        # A statement_timeout (as a role or database setting could give) far shorter than
        # this vacuum (about 20 ms), and long enough for the one-line queries around it.
        _leave_dead_rows(db, app.namespace, 30_000)
        await conn.execute("SET statement_timeout = 5")
        assert await store.vacuum(conn)  # not cut short
        assert _vacuum_count(db, app.namespace) == before + 2
        assert await (await conn.execute("SHOW statement_timeout")).fetchone() == ("5ms",)


async def test_maintenance_vacuums_the_jobs_table_unless_told_not_to(
    app: Stem,
    database_url: str,
    db: psycopg.Connection,
) -> None:
    store = JobStore(app.queries, result_ttl=60)
    _leave_dead_rows(db, app.namespace, 10_500)  # 21,000 dead rows: past the default threshold
    before = _vacuum_count(db, app.namespace)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        off = WorkerSettings(queues=("default",), vacuum=False)
        assert (await Maintenance(store, off).run_once(conn)).vacuumed == 0
        assert _vacuum_count(db, app.namespace) == before
        report = await Maintenance(store, WorkerSettings(queues=("default",))).run_once(conn)
        assert report.vacuumed == 21_000
        assert _vacuum_count(db, app.namespace) == before + 1


async def test_only_the_table_owner_vacuums(
    app: Stem,
    database_url: str,
    db: psycopg.Connection,
) -> None:
    superuser = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser or not superuser[0]:
        pytest.skip("needs a superuser to create a role")
    role = f"stem_guest_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        grant = sql.SQL("GRANT USAGE ON SCHEMA {} TO {}")
        db.execute(grant.format(sql.Identifier(app.namespace), sql.Identifier(role)))
        _leave_dead_rows(db, app.namespace, 50)
        before = _vacuum_count(db, app.namespace)
        guest = psycopg.conninfo.make_conninfo(database_url, user=role)
        async with await psycopg.AsyncConnection.connect(guest, autocommit=True) as conn:
            assert await _vacuum_if_due(app, base=1, scale=0).run_once(conn) == 0
        assert _vacuum_count(db, app.namespace) == before
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_expiry_sweep_reads_the_expiry_index(app: Stem, db: psycopg.Connection) -> None:
    """The sweep runs in every maintenance pass: it must not scan the whole jobs table."""
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL enable_seqscan = off")
        params = {"limit": 1000, "result_ttl": 60, "channel": app.queries.channels.done}
        plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + app.queries["job_cancel_expired"], params))
    assert "jobs_expires_idx" in plan, plan


def test_a_fast_drain_runs_the_maintenance_pass_early(
    app: Stem,
    database_url: str,
    db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claimed jobs, not only the clock, bring the next pass (and its vacuum check) forward:
    here a lease that expired is rescued long before the 60 s interval comes round."""
    from stem_pg.worker import worker as worker_module
    from tests.helpers import running_worker, wait_for

    @app.task(name="quick")
    def quick() -> None: ...

    app.enqueue("quick", task_id="stranded")
    db.execute(
        _q(
            "UPDATE {ns}.jobs SET state = 'running', attempts = 1, lease_token = gen_random_uuid(),"
            " lease_expires_at = now() - interval '1 second' WHERE id = 'stranded'",
            app.namespace,
        )
    )
    monkeypatch.setattr(worker_module, "MAINTAIN_EVERY_CLAIMED", 5)
    with running_worker(app, maintenance_interval=60.0):
        time.sleep(0.5)  # past the worker's start, when no pass is due for a minute
        handles = [app.enqueue("quick") for _ in range(6)]
        wait_for(lambda: all((s := h.status()) is not None and s.state == "succeeded" for h in handles))
        wait_for(lambda: (s := app.result("stranded").status()) is not None and s.state == "succeeded")
