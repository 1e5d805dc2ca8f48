"""What a loop of single enqueues costs the server: one transaction per job, its wake-up included."""

from __future__ import annotations

import time

import psycopg

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.schema.migrate import migrate
from tests.databases import private_database

CALLS = 200


def _commits(admin_url: str, name: str) -> int:
    """``name``'s committed transactions, read once no backend is connected to it (a backend
    reports its counters to pg_stat_database at the latest when it exits)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        connected = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        while admin.execute(connected, (name,)).fetchone() != (0,):
            assert time.monotonic() < deadline, f"connections to {name} still open"
            time.sleep(0.05)
        admin.execute("SELECT pg_stat_clear_snapshot()")
        row = admin.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
        assert row is not None
        return int(row[0])


def test_a_loop_of_single_enqueues_commits_once_per_job(database_url: str) -> None:
    """Back-to-back ``enqueue()`` calls from one thread: each is one INSERT that also sends
    the job's NOTIFY, so the database counts one commit per call (plus the few that opening
    the pool costs), not a second transaction for the wake-up. A private database, so no
    one else's transactions are counted."""
    with private_database(database_url, "stem_commits") as url:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        migrate(url, "loop")
        before = _commits(database_url, str(name))
        app = Stem(url, namespace="loop", config=StemConfig())
        try:
            for _ in range(CALLS):
                app.enqueue("t", queue="loop")
        finally:
            app.close()
        committed = _commits(database_url, str(name)) - before
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM loop.jobs").fetchone() == (CALLS,)
    assert CALLS <= committed <= CALLS + 10, f"{committed} commits for {CALLS} enqueues"
