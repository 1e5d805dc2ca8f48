"""The per-minute rollup of results (migration 0019, sql/rollup.sql) that the dashboard's
chart reads: maintenance rolls each complete minute up once, and the chart shows what the
old full scan of the hour's results showed."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.db.stores.dashboard import DashboardStore
from stem_pg.db.stores.jobs import JobStore
from stem_pg.db.stores.rollup import RollupStore
from stem_pg.worker.maintenance import Maintenance
from stem_pg.worker.settings import WorkerSettings
from tests.helpers import url_as

#: dash_minutes before the rollup: every result of the last hour, grouped.
OLD_DASH_MINUTES = """
SELECT queue, date_bin('1 minute', finished_at, timestamptz '2000-01-01 00:00+00') AS minute,
       count(*) AS finished, count(*) FILTER (WHERE state = 'failed') AS failed,
       extract(epoch FROM avg(started_at - enqueued_at))::double precision AS wait
FROM {ns}.results
WHERE finished_at > date_trunc('minute', now()) - interval '59 minutes'
GROUP BY 1, 2
ORDER BY 2
"""

#: (queue, state, seconds ago finished, seconds of wait or None: never started). Rows at
#: least 70 s old are in minutes a pass rolls up (they ended >= 10 s ago); rows under 10 s
#: old are not (the current minute, or the one that just ended); none near the hour's edge.
ROWS = [
    ("q1", "succeeded", 70, 1.5),
    ("q1", "failed", 75, 0.25),
    ("q1", "succeeded", 130, 3.0),
    ("q2", "succeeded", 130, None),
    ("q2", "failed", 135, 2.0),
    ("q1", "succeeded", 600, 0.5),
    ("q2", "succeeded", 1800, 10.0),
    ("q2", "succeeded", 1805, 20.0),
    ("q1", "succeeded", 3000, 4.0),
    ("q1", "failed", 2, 1.0),  # live: not rolled up
    ("q2", "succeeded", 1, None),
    ("q1", "succeeded", 2 * 3600, 1.0),  # older than the chart's hour: never rolled up
]
ROLLED = sum(1 for row in ROWS if 70 <= row[2] <= 3600)


def _q(text: str, ns: str) -> sql.Composed:
    return sql.SQL(text).format(ns=sql.Identifier(ns))


def _insert(db: psycopg.Connection[Any], ns: str, rows: list[tuple[str, str, int, float | None]]) -> None:
    for i, (queue, state, ago, wait) in enumerate(rows):
        db.execute(
            _q(
                "INSERT INTO {ns}.results (id, task, queue, priority, state, attempts,"
                " enqueued_at, started_at, finished_at)"
                " VALUES (%s, 't', %s, 0, %s, 1, now() - make_interval(secs => %s + 100),"
                " now() - make_interval(secs => %s + 100) + make_interval(secs => %s),"
                " now() - make_interval(secs => %s))",
                ns,
            ),
            (f"r{i}-{ago}", queue, state, ago, ago, wait, ago),
        )
        if wait is None:
            db.execute(_q("UPDATE {ns}.results SET started_at = NULL WHERE id = %s", ns), (f"r{i}-{ago}",))


def _chart(rows: list[Any]) -> dict[tuple[str, Any], tuple[int, int, float | None]]:
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def _assert_same(new: dict[Any, Any], old: dict[Any, Any]) -> None:
    assert new.keys() == old.keys()
    for key, (finished, failed, wait) in old.items():
        assert new[key][:2] == (finished, failed), key
        assert new[key][2] == (None if wait is None else pytest.approx(wait)), key


async def test_complete_minutes_are_rolled_up_once_and_the_chart_matches_the_full_scan(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    ns = app.namespace
    _insert(db, ns, ROWS)
    old = _chart(db.execute(_q(OLD_DASH_MINUTES, ns)).fetchall())
    store = DashboardStore(app.queries)
    assert _chart([(m.queue, m.minute, m.finished, m.failed, m.wait) for m in store.minutes(db)]) == old

    maintenance = Maintenance(JobStore(app.queries, result_ttl=3600), WorkerSettings(queues=("q1",)))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        first = await maintenance.run_once(conn)
        rolled = db.execute(_q("SELECT * FROM {ns}.result_minutes ORDER BY 1, 2", ns)).fetchall()
        second = await maintenance.run_once(conn)
    assert first.rolled_up == ROLLED
    assert sum(r[2] for r in rolled) == ROLLED
    assert second.rolled_up == 0
    assert db.execute(_q("SELECT * FROM {ns}.result_minutes ORDER BY 1, 2", ns)).fetchall() == rolled

    new = _chart([(m.queue, m.minute, m.finished, m.failed, m.wait) for m in store.minutes(db)])
    _assert_same(new, _chart(db.execute(_q(OLD_DASH_MINUTES, ns)).fetchall()))
    _assert_same(new, old)
    # The rolled-up minutes come from result_minutes: the chart no longer reads those results.
    db.execute(_q("DELETE FROM {ns}.results WHERE finished_at < now() - interval '70 seconds'", ns))
    _assert_same(_chart([(m.queue, m.minute, m.finished, m.failed, m.wait) for m in store.minutes(db)]), old)


async def test_one_worker_at_a_time_and_minutes_older_than_a_day_are_pruned(
    app: Stem, database_url: str, db: psycopg.Connection[Any]
) -> None:
    ns = app.namespace
    db.execute(
        _q(
            "INSERT INTO {ns}.result_minutes"
            " SELECT date_bin('1 minute', now() - h * interval '1 hour', timestamptz '2000-01-01'),"
            " 'q1', 1, 0, 1, 1.0 FROM unnest(ARRAY[25, 23]) AS h",
            ns,
        )
    )
    _insert(db, ns, [("q1", "succeeded", 80, 1.0)])
    rollup = RollupStore(app.queries)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with db.transaction():  # another worker's pass holds the lock
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('stem_pg:rollup:' || %s, 0))", (ns,))
            assert await rollup.roll_up(conn) is None
        done = await rollup.roll_up(conn)
    assert done is not None and (done.minutes, done.results, done.pruned) == (1, 1, 1)
    left = db.execute(_q("SELECT count(*), sum(finished) FROM {ns}.result_minutes", ns)).fetchone()
    assert left == (2, 2)


async def test_a_role_granted_before_0019_skips_the_rollup_with_one_warning(
    app: Stem, db: psycopg.Connection[Any], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``stem roles`` not run again after the migration: the worker role may not write the
    rollup; the pass warns once and goes on with the rest of its chores."""
    superuser = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser or not superuser[0]:
        pytest.skip("needs a superuser to create a role")
    ns, user = app.namespace, f"stem_old_worker_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
    try:
        db.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(ns), sql.Identifier(user)))
        for grant in (  # everything but the rollup's tables
            "GRANT ALL ON ALL TABLES IN SCHEMA {ns} TO {user}",
            "REVOKE ALL ON {ns}.result_minutes, {ns}.result_rollup FROM {user}",
        ):
            db.execute(sql.SQL(grant).format(ns=sql.Identifier(ns), user=sql.Identifier(user)))
        maintenance = Maintenance(JobStore(app.queries, result_ttl=60), WorkerSettings(queues=("q1",)))
        async with await psycopg.AsyncConnection.connect(url_as(database_url, user), autocommit=True) as conn:
            reports = [await maintenance.run_once(conn) for _ in range(2)]
        assert [r.rolled_up for r in reports] == [0, 0]
        warned = [r for r in caplog.records if "run `stem roles` again" in r.getMessage()]
        assert len(warned) == 1
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(user)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))
