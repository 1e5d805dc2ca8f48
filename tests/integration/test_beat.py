"""Beat's steps on a real Postgres with an injected clock: no sleeping, no processes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from stem_pg.beat.scheduler import FIRE_TIME_HEADER, LEADER_KEY, SCHEDULE_HEADER, Beat, BeatSettings
from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.core.schedules import parse_entry

Db = psycopg.Connection[tuple[Any, ...]]
AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConn]:
    connection = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    yield connection
    await connection.close()


def add(app: Stem, name: str, body: dict[str, Any], *, now: datetime = T0) -> None:
    Schedules(app.url, app.namespace, clock=lambda: now).save(parse_entry(name, body))


def beat(app: Stem, beat_id: str = "beat-a", **settings: Any) -> Beat:
    return Beat(app, BeatSettings(beat_id=beat_id, **settings), clock=lambda: T0)


def q(db: Db, ns: str, text: str, *args: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql.SQL(text).format(ns=sql.Identifier(ns)), args).fetchall()


def fires(db: Db, ns: str) -> list[tuple[Any, ...]]:
    return q(
        db, ns, "SELECT schedule, fire_time, task_id FROM {ns}.schedule_fires ORDER BY schedule, fire_time"
    )


def job_rows(db: Db, ns: str) -> list[tuple[Any, ...]]:
    return q(
        db, ns, "SELECT id, task, queue, priority, args, headers, not_before FROM {ns}.jobs ORDER BY seq"
    )


async def test_a_due_entry_fires_once_and_moves_on(app: Stem, db: Db, conn: AsyncConn) -> None:
    add(app, "tick", {"task": "t.tick", "spec": "every:10s", "kwargs": {"n": 1}, "queue": "q", "priority": 3})
    b = beat(app)
    assert (await b.run_once(conn, now=T0 + timedelta(seconds=5))).fired == 0, "not due yet"
    report = await b.run_once(conn, now=T0 + timedelta(seconds=10.2))
    assert (report.due, report.fired, report.next_due) == (1, 1, T0 + timedelta(seconds=20))
    [(job_id, task, queue, priority, args, headers, _)] = job_rows(db, app.namespace)
    assert (task, queue, priority, args) == ("t.tick", "q", 3, {"n": 1})
    assert headers == {SCHEDULE_HEADER: "tick", FIRE_TIME_HEADER: (T0 + timedelta(seconds=10)).isoformat()}
    assert fires(db, app.namespace) == [("tick", T0 + timedelta(seconds=10), job_id)]
    row = Schedules(app.url, app.namespace).get("tick")
    assert row is not None
    assert (row.total_runs, row.last_run_at, row.next_run_at) == (
        1,
        T0 + timedelta(seconds=10.2),
        T0 + timedelta(seconds=20),
    )
    assert row.drift == pytest.approx(0.2) and row.last_success_at is not None
    assert (await b.run_once(conn, now=T0 + timedelta(seconds=10.4))).fired == 0


async def test_two_beats_racing_on_the_same_due_entry_fire_it_once(
    app: Stem, db: Db, database_url: str
) -> None:
    add(app, "tick", {"task": "t.tick", "spec": "every:10s"})
    beats = [beat(app, f"beat-{i}") for i in range(4)]
    conns = [await psycopg.AsyncConnection.connect(database_url, autocommit=True) for _ in beats]
    try:
        now = T0 + timedelta(seconds=10)
        reports = await asyncio.gather(*(b.run_once(c, now=now) for b, c in zip(beats, conns, strict=True)))
    finally:
        for c in conns:
            await c.close()
    assert sum(r.fired for r in reports) == 1
    assert len(fires(db, app.namespace)) == 1 and len(job_rows(db, app.namespace)) == 1


async def test_a_stale_read_cannot_fire_again(app: Stem, db: Db, conn: AsyncConn) -> None:
    """The unique (schedule, fire time) key holds even if the entry is reset to a fired slot."""
    add(app, "tick", {"task": "t.tick", "spec": "every:10s"})
    b = beat(app)
    await b.run_once(conn, now=T0 + timedelta(seconds=10))
    q(db, app.namespace, "UPDATE {ns}.schedules SET next_run_at = %s RETURNING 1", T0 + timedelta(seconds=10))
    report = await b.run_once(conn, now=T0 + timedelta(seconds=10.5))
    assert report.fired == 0 and report.skipped == 1
    assert len(fires(db, app.namespace)) == 1 and len(job_rows(db, app.namespace)) == 1
    row = Schedules(app.url, app.namespace).get("tick")
    assert row is not None and row.next_run_at == T0 + timedelta(seconds=20), "it still moved on"


async def test_a_fenced_off_leader_changes_nothing(app: Stem, db: Db, conn: AsyncConn) -> None:
    add(app, "tick", {"task": "t.tick", "spec": "every:10s"})
    old, new = beat(app, "old", lease_seconds=30), beat(app, "new", lease_seconds=30)
    assert await old.lead_once(conn)
    assert old.lease is not None
    stale_token = old.lease.token
    assert not await new.lead_once(conn), "the lease is held"
    q(db, app.namespace, "UPDATE {ns}.locks SET expires_at = now() - interval '1 s' RETURNING 1")
    assert await new.lead_once(conn) and new.lease is not None and new.lease.token > stale_token
    # The old leader wakes up and fires with its stale token: nothing happens.
    report = await old.run_once(conn, now=T0 + timedelta(seconds=10), token=stale_token)
    assert (report.fired, report.lost) == (0, 1)
    assert fires(db, app.namespace) == []
    assert not await old.lead_once(conn), "its renewal fails: it steps down"
    report = await new.run_once(conn, now=T0 + timedelta(seconds=10), token=new.lease.token)
    assert report.fired == 1
    assert q(db, app.namespace, "SELECT beat_id, fence FROM {ns}.schedule_fires") == [
        ("new", new.lease.token)
    ]


async def test_leader_election_and_release(app: Stem, db: Db, conn: AsyncConn) -> None:
    a, b = beat(app, "a"), beat(app, "b")
    assert await a.lead_once(conn) and a.leading()
    assert not await b.lead_once(conn) and not b.leading()
    assert await a.lead_once(conn), "renewal keeps the token"
    assert a.lease is not None
    token = a.lease.token
    assert q(db, app.namespace, "SELECT owner, token FROM {ns}.locks WHERE key = %s", LEADER_KEY) == [
        ("a", token)
    ]
    await a.release_lease(conn)
    assert a.lease is None and not a.leading()
    assert await b.lead_once(conn) and b.lease is not None and b.lease.token > token


async def test_run_once_misfire_after_downtime_is_one_fire_not_a_burst(
    app: Stem, db: Db, conn: AsyncConn
) -> None:
    add(app, "hourly", {"task": "t.h", "spec": {"cron": "0 * * * *"}})
    add(app, "hourly-skip", {"task": "t.s", "spec": {"cron": "0 * * * *"}, "misfire": "skip"})
    b = beat(app)
    now = datetime(2026, 6, 1, 17, 20, tzinfo=UTC)  # five hours of missed fires
    report = await b.run_once(conn, now=now)
    assert (report.due, report.fired, report.skipped) == (2, 1, 1)
    assert fires(db, app.namespace)[0][:2] == ("hourly", datetime(2026, 6, 1, 13, 0, tzinfo=UTC))
    assert [r[1] for r in job_rows(db, app.namespace)] == ["t.h"]
    for row in Schedules(app.url, app.namespace).list():
        assert row.next_run_at == datetime(2026, 6, 1, 18, 0, tzinfo=UTC)


async def test_disabled_expired_and_finished_entries_do_not_fire(app: Stem, db: Db, conn: AsyncConn) -> None:
    add(app, "off", {"task": "t", "spec": "every:10s", "enabled": False})
    add(app, "old", {"task": "t", "spec": "every:10s", "expires_at": (T0 + timedelta(seconds=5)).isoformat()})
    add(app, "once", {"task": "t.once", "spec": {"clocked": (T0 + timedelta(seconds=1)).isoformat()}})
    b = beat(app)
    report = await b.run_once(conn, now=T0 + timedelta(seconds=30))
    assert report.fired == 1 and report.next_due is None
    assert [f[0] for f in fires(db, app.namespace)] == ["once"]
    once = Schedules(app.url, app.namespace).get("once")
    assert once is not None and once.next_run_at is None


async def test_an_entry_that_cannot_be_enqueued_records_its_error(app: Stem, db: Db, conn: AsyncConn) -> None:
    add(app, "bad", {"task": "t", "spec": "every:10s"})
    q(db, app.namespace, 'UPDATE {ns}.schedules SET spec = \'{{"cron": "99 * * * *"}}\' RETURNING 1')
    report = await beat(app).run_once(conn, now=T0 + timedelta(seconds=10))
    assert (report.fired, report.errors) == (0, 1)
    row = Schedules(app.url, app.namespace).get("bad")
    assert row is not None and row.next_run_at is None and "minute field '99'" in (row.last_error or "")


async def test_jitter_delays_the_job_not_the_fire(app: Stem, db: Db, conn: AsyncConn) -> None:
    add(app, "j", {"task": "t", "spec": "every:10s", "jitter": "1h"})
    await beat(app).run_once(conn, now=T0 + timedelta(seconds=10))
    [(_, _, _, _, _, _, not_before)] = job_rows(db, app.namespace)
    assert fires(db, app.namespace)[0][1] == T0 + timedelta(seconds=10)
    assert not_before > datetime.now(UTC) - timedelta(seconds=5)


async def test_a_scheduled_unique_task_is_not_doubled(app: Stem, db: Db, conn: AsyncConn) -> None:
    @app.task(name="u.sync", unique=True)
    def sync_() -> None: ...

    add(app, "sync", {"task": "u.sync", "spec": "every:10s"})
    b = beat(app)
    await b.run_once(conn, now=T0 + timedelta(seconds=10))
    await b.run_once(conn, now=T0 + timedelta(seconds=20))
    assert len(fires(db, app.namespace)) == 2
    assert len(job_rows(db, app.namespace)) == 1, "the first job is still live"


async def test_a_running_beat_picks_up_edits_at_once(app: Stem, db: Db) -> None:
    """Real clock: an entry added while beat sleeps (max_sleep 30 s) fires within a second."""
    b = Beat(app, BeatSettings(beat_id="live", lease_seconds=5, max_sleep=30))
    runner = asyncio.create_task(b.run())
    try:
        for _ in range(100):
            if b.leading():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let it fall asleep
        now = datetime.now(UTC)
        add(
            app,
            "soon",
            {"task": "t", "spec": {"clocked": (now + timedelta(seconds=0.5)).isoformat()}},
            now=now,
        )
        for _ in range(60):
            if fires(db, app.namespace):
                break
            await asyncio.sleep(0.05)
        assert [f[0] for f in fires(db, app.namespace)] == ["soon"]
    finally:
        b.request_stop()
        await asyncio.wait_for(runner, 10)
    assert q(db, app.namespace, "SELECT count(*) FROM {ns}.locks") == [(0,)], "the lease was handed back"


async def test_cron_in_a_dst_zone_fires_at_the_right_wall_clock_times(
    app: Stem, db: Db, conn: AsyncConn
) -> None:
    """Beat driven by an injected clock through both 2026 changes in Europe/Berlin."""
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    nightly = {"task": "t", "spec": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}}
    add(app, "night", nightly, now=start)
    add(app, "hourly", {"task": "t", "spec": {"cron": "15 * * * *", "timezone": "Europe/Berlin"}}, now=start)
    b = beat(app)
    now = start
    for _ in range(90):  # walk from one due time to the next, firing each on time
        report = await b.run_once(conn, now=now)
        assert report.next_due is not None
        now = report.next_due
    night = [f[1].astimezone(berlin).isoformat() for f in fires(db, app.namespace) if f[0] == "night"]
    assert night[:3] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    hourly = [f[1] for f in fires(db, app.namespace) if f[0] == "hourly"]
    assert len(hourly) >= 80, f"the hourly entry fired {len(hourly)} times in 90 due times"
    assert all((b - a) == timedelta(hours=1) for a, b in itertools.pairwise(hourly)), "no gap, no double"
    spring_night = [t.astimezone(berlin).hour for t in hourly if t.astimezone(berlin).date().day == 29]
    assert 2 not in spring_night and spring_night.count(3) == 1, "02:15 does not exist that night"
    assert len(job_rows(db, app.namespace)) == len(fires(db, app.namespace))

    q(db, app.namespace, "DELETE FROM {ns}.schedule_fires RETURNING 1")
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    in_autumn = Schedules(app.url, app.namespace, clock=lambda: autumn)
    in_autumn.delete("night")
    in_autumn.delete("hourly")
    in_autumn.save(parse_entry("night", nightly))
    now = autumn
    for _ in range(3):
        report = await b.run_once(conn, now=now)
        assert report.next_due is not None
        now = report.next_due
    night = [f[1].astimezone(berlin).isoformat() for f in fires(db, app.namespace)]
    assert night == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
