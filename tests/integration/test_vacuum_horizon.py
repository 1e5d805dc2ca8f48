"""A snapshot held open keeps every dead row VACUUM would remove: the maintenance pass backs
off instead of vacuuming again and again, names the session that holds it once per worker,
and vacuums again once it ends. In a database of the test's own: another session of the
shared one (another test's) must not hold the horizon instead."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.core.vacuum import VacuumPolicy
from stem_pg.db.queries import Queries
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.vacuum import VacuumStore
from stem_pg.schema.migrate import migrate
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.vacuum import JobsVacuum
from tests.cluster import PrivateCluster, private_cluster
from tests.databases import private_database
from tests.helpers import unique_namespace

__all__ = ["private_cluster"]  # the fixture

HOLDER_APP = "stem_test:snapshot-holder"


@pytest.fixture
def own_url(database_url: str) -> Iterator[str]:
    with private_database(database_url, "stem_vac") as url:
        yield url


def _q(text: str, ns: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(ns))


def _vacuum_count(db: psycopg.Connection[Any], namespace: str) -> int:
    row = db.execute(
        "SELECT vacuum_count FROM pg_stat_all_tables WHERE schemaname = %s AND relname = 'jobs'",
        (namespace,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _leave_dead_rows(db: psycopg.Connection[Any], namespace: str, jobs: int) -> None:
    """Insert, update and delete ``jobs`` rows (two dead versions each), then publish the counts."""
    db.execute(
        _q(
            "INSERT INTO {ns}.jobs (id, task, queue) SELECT 'dead-' || gen_random_uuid(), 't', 'default'"
            " FROM generate_series(1, %s)",
            namespace,
        ),
        (jobs,),
    )
    db.execute(_q("UPDATE {ns}.jobs SET state = 'running'", namespace))
    db.execute(_q("DELETE FROM {ns}.jobs", namespace))
    db.execute("SELECT pg_stat_force_next_flush()")


def _dead_rows(db: psycopg.Connection[Any], namespace: str) -> int:
    row = db.execute(
        "SELECT n_dead_tup FROM pg_stat_all_tables WHERE schemaname = %s AND relname = 'jobs'",
        (namespace,),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_held_snapshot_holds_vacuums_back_and_names_its_holder(
    own_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ns = unique_namespace()
    migrate(own_url, ns)
    jobs = JobStore(Queries(ns), result_ttl=60)
    settings = WorkerSettings(queues=("default",))
    workers = [Maintenance(jobs, settings), Maintenance(jobs, settings)]  # two workers' passes
    caplog.set_level(logging.INFO, logger="stem_pg")
    with (
        psycopg.connect(own_url, autocommit=True, application_name=HOLDER_APP) as holder,
        psycopg.connect(own_url, autocommit=True) as db,
    ):
        async with await psycopg.AsyncConnection.connect(own_url, autocommit=True) as conn:
            holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            holder.execute(_q("SELECT count(*) FROM {ns}.jobs", ns))  # the snapshot is taken here
            before = _vacuum_count(db, ns)
            for _ in range(4):  # 21,000 more dead rows each round: past the threshold every time
                _leave_dead_rows(db, ns, 10_500)
                for worker in workers:
                    await worker.run_once(conn)
            # One vacuum (the first: it cannot know that nothing is older than the snapshot),
            # not one per pass.
            assert _vacuum_count(db, ns) - before == 1
            assert _dead_rows(db, ns) >= 84_000  # nothing could be removed

            # Whom to blame: named once the transaction is old enough (60 s by default), once
            # per worker, however many passes follow.
            for worker in workers:
                worker.vacuum.policy.warn_after = 0.0
            for _ in range(3):
                for worker in workers:
                    await worker.run_once(conn)
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 2, warnings
            for line in warnings:
                assert f"vacuum of {ns}.jobs held back" in line
                assert f"session pid {holder.info.backend_pid} (application_name '{HOLDER_APP}'" in line
                assert "state 'idle in transaction'" in line and "transaction open for" in line
            assert _vacuum_count(db, ns) - before == 1

            holder.execute("COMMIT")  # the horizon moves: the next pass vacuums, and removes them
            await workers[1].run_once(conn)
            assert _vacuum_count(db, ns) - before == 2
            assert _dead_rows(db, ns) < 1000
            assert any("again: the xmin horizon moved" in r.getMessage() for r in caplog.records)


async def test_a_prepared_transaction_is_named_and_a_logical_slot_holds_nothing_back(
    private_cluster: PrivateCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A prepared transaction holds the horizon at its transaction id, named by its gid; a
    logical slot's catalog_xmin holds back only the system catalogs, so the jobs table is
    vacuumed as usual while one exists. (A private cluster: the shared server has
    max_prepared_transactions = 0 and wal_level = replica, and is not ours to change.)"""
    with private_cluster.connect() as admin:
        admin.execute("ALTER SYSTEM SET max_prepared_transactions = 2")
        admin.execute("ALTER SYSTEM SET wal_level = logical")
    private_cluster.stop()
    private_cluster.start()
    url = private_cluster.url
    ns = unique_namespace()
    migrate(url, ns)
    store = VacuumStore(Queries(ns))
    caplog.set_level(logging.INFO, logger="stem_pg")
    with psycopg.connect(url, autocommit=True) as db:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            db.execute("SELECT pg_create_logical_replication_slot('stem_test_slot', 'pgoutput')")
            _leave_dead_rows(db, ns, 500)
            assert await store.horizon(conn) is None
            vacuum = JobsVacuum(store, VacuumPolicy(base=100, scale=0, warn_after=0.0))
            assert await vacuum.run_once(conn) == 1000
            assert _dead_rows(db, ns) == 0  # the slot held nothing back
            db.execute("SELECT pg_drop_replication_slot('stem_test_slot')")

            db.execute("BEGIN")
            db.execute("SELECT pg_current_xact_id()")  # the transaction gets its id
            db.execute("PREPARE TRANSACTION 'stem-test-gid'")
            try:
                _leave_dead_rows(db, ns, 500)
                holder = await store.horizon(conn)
                assert holder is not None and (holder.kind, holder.name) == ("prepared", "stem-test-gid")
                for _ in range(3):
                    await vacuum.run_once(conn)
                assert _dead_rows(db, ns) == 1000  # one vacuum ran, and could remove nothing
                warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
                assert len(warnings) == 1, warnings
                assert "prepared transaction 'stem-test-gid' (prepared" in warnings[0]
                assert "ROLLBACK PREPARED 'stem-test-gid'" in warnings[0]
            finally:
                db.execute("ROLLBACK PREPARED 'stem-test-gid'")
            assert await vacuum.run_once(conn) == 1000
            assert _dead_rows(db, ns) == 0


async def test_a_snapshot_in_another_database_holds_nothing_back(own_url: str, database_url: str) -> None:
    """VACUUM of a table respects the snapshots of its own database only (and slots and
    walsenders): a session idle in a transaction of the shared database is not our holder."""
    ns = unique_namespace()
    migrate(own_url, ns)
    with psycopg.connect(database_url, autocommit=True, application_name=HOLDER_APP) as elsewhere:
        elsewhere.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        elsewhere.execute("SELECT 1")
        async with await psycopg.AsyncConnection.connect(own_url, autocommit=True) as conn:
            holder = await VacuumStore(Queries(ns)).horizon(conn)
            assert holder is None or holder.pid != elsewhere.info.backend_pid, holder
        elsewhere.execute("COMMIT")
