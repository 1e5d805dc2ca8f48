"""A worker process on a primary that turns read-only mid-run, on a private cluster: as after a
failover, when the old primary (or the name, or the pooler, pointing at it) refuses writes.

The database is made read-only with ``ALTER DATABASE ... SET default_transaction_read_only``
and the worker's sessions are terminated, so each new one refuses every write (SQLSTATE
25006). The worker logs one "database is read-only" line, and its loops discard their
connections and reconnect with backoff: a session opened while the database was read-only
stays so, so only a new one can write once it is not. Outcomes it could not write meanwhile
are kept and written after, so every job enqueued before runs to success exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from stem_pg.client.app import Stem
from stem_pg.client.results import TaskResult
from tests.acceptance.workerapp import Workers, create_tables, make_app, query, registered_pids
from tests.cluster import PrivateCluster, migrated, private_cluster
from tests.helpers import wait_for

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

__all__ = ["private_cluster"]  # the fixture, imported for the tests below

JOBS = 40
READ_ONLY_FOR = 5.0
FINISHED = "SELECT count(*) FROM {ns}.ledger WHERE event = 'finished'"
STARTED = "SELECT n, count(*) FROM {ns}.ledger WHERE event = 'started' GROUP BY n ORDER BY n"


def _read_only(db: psycopg.Connection[Any], dbname: str, on: bool) -> None:
    name = sql.Identifier(dbname)
    if on:
        db.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(name))
        # Sessions that exist keep their setting: end the worker's, so its new ones are read-only.
        db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'stem_pg:%'"
        )
    else:
        db.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(name))


def _refused_enqueue(stem: Stem) -> Exception:
    """The error an enqueue gets from the read-only database (its pool's old connection,
    terminated, fails first)."""
    for _ in range(5):
        try:
            stem.enqueue("acc.step", {"n": -1})
        except psycopg.OperationalError:
            continue
        except psycopg.Error as exc:
            return exc
        raise AssertionError("an enqueue was accepted by a read-only database")
    raise AssertionError("no enqueue reached the read-only database")


def _enqueue_again(stem: Stem, kwargs: dict[str, Any]) -> TaskResult:
    """Once the database takes writes again, an enqueue succeeds after at most one refusal
    per pool connection opened while it was read-only: each refused one closes its session,
    instead of the pool keeping it (until its max lifetime, an hour)."""
    for _ in range(stem.pool_size + 1):
        try:
            return stem.enqueue("acc.step", kwargs)
        except psycopg.errors.ReadOnlySqlTransaction:
            continue
    raise AssertionError("the application's pool kept a read-only session")


def test_worker_waits_out_a_read_only_database_and_loses_nothing(
    private_cluster: PrivateCluster, tmp_path: Path
) -> None:
    namespace = migrated(private_cluster, "readonly")
    dbname = str(conninfo_to_dict(private_cluster.url).get("dbname") or "postgres")
    with private_cluster.connect() as db:  # opened before: it stays read-write throughout
        create_tables(db, namespace)
        stem = make_app(private_cluster.url, namespace)
        workers = Workers(private_cluster.url, namespace, tmp_path)
        try:
            # A lease longer than the read-only spell: no lease runs out while none can be renewed.
            worker = workers.start(
                concurrency=10, lease=30, poll_interval=0.2, extra=["--connections", "minimal"]
            )
            results = [stem.enqueue("acc.step", {"n": n, "sleep": 0.3}) for n in range(JOBS)]
            wait_for(lambda: registered_pids(db, namespace), 30, "the worker to register")
            wait_for(
                lambda: (
                    query(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE event = 'finished'")[0][0]
                    >= 5
                ),
                30,
                "some jobs to finish",
            )
            _read_only(db, dbname, True)
            began = time.monotonic()
            refused = _refused_enqueue(stem)  # its pool's new session is read-only too
            time.sleep(max(0.0, READ_ONLY_FOR - (time.monotonic() - began)))  # outcomes pile up
            _read_only(db, dbname, False)
            assert isinstance(refused, psycopg.errors.ReadOnlySqlTransaction), refused
            late = _enqueue_again(stem, {"n": JOBS})
            attempts = [r.get(timeout=60)["attempt"] for r in [*results, late]]
            assert attempts == [1] * (JOBS + 1), workers.logs()
            runs = query(
                db,
                namespace,
                "SELECT n, count(*) FROM {ns}.ledger WHERE event = 'started' GROUP BY n ORDER BY n",
            )
            assert runs == [(n, 1) for n in range(JOBS + 1)], "a job ran twice, or not at all"
            log = worker.log(tail=None)
            assert log.count("database is read-only") == 1, log
            assert "cannot execute" in log, log  # the line says what the database refused
            assert "database accepts writes again" in log, log
            assert "Traceback" not in log and "loop failed" not in log, log
        finally:
            workers.cleanup()
            stem.close()
