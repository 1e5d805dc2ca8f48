"""The schedule store: apply (and its dry run), optimistic versions, enable/disable, NOTIFY."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from stem_pg.core.errors import ScheduleConflict, ScheduleError
from stem_pg.core.namespaces import Channels
from stem_pg.core.schedules import parse_entry

Db = psycopg.Connection[tuple[Any, ...]]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

FILE = """\
tick:
  task: t.tick
  spec: every:10s
nightly:
  task: t.nightly
  spec: {cron: "0 2 * * *", timezone: Europe/Berlin}
  kwargs: {day: yesterday}
"""


@pytest.fixture
def schedules(app: Stem) -> Schedules:
    return Schedules(app.url, app.namespace, clock=lambda: NOW)


def snapshot(db: Db, ns: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT * FROM {}.schedules ORDER BY name").format(sql.Identifier(ns))
    return db.execute(query).fetchall()


def test_apply_creates_then_reports_unchanged(schedules: Schedules) -> None:
    plan = schedules.apply(load_schedule_yaml(FILE))
    assert [(c.action, c.name) for c in plan.changes] == [("create", "tick"), ("create", "nightly")]
    rows = {r.name: r for r in schedules.list()}
    assert rows["tick"].next_run_at == NOW + timedelta(seconds=10)
    assert rows["nightly"].next_run_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert rows["nightly"].kwargs == {"day": "yesterday"} and rows["nightly"].version == 1
    again = schedules.apply(load_schedule_yaml(FILE))
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]


def test_dry_run_changes_nothing(schedules: Schedules, db: Db, app: Stem) -> None:
    schedules.apply(load_schedule_yaml(FILE))
    before = snapshot(db, app.namespace)
    edited = FILE.replace("every:10s", "every:20s") + "new:\n  task: t.new\n  spec: every:1m\n"
    plan = schedules.apply(load_schedule_yaml(edited), prune=True, dry_run=True)
    assert plan.dry_run
    assert [(c.action, c.name, c.fields) for c in plan.changes] == [
        ("update", "tick", ("spec",)),
        ("unchanged", "nightly", ()),
        ("create", "new", ()),
    ]
    assert snapshot(db, app.namespace) == before


def test_update_reschedules_only_when_the_spec_changes(schedules: Schedules, db: Db, app: Stem) -> None:
    schedules.apply(load_schedule_yaml(FILE))
    later = Schedules(app.url, app.namespace, clock=lambda: NOW + timedelta(hours=1))
    later.apply(load_schedule_yaml(FILE.replace("{day: yesterday}", "{day: today}")))
    nightly = later.get("nightly")
    assert nightly is not None and nightly.version == 2 and nightly.kwargs == {"day": "today"}
    assert nightly.next_run_at == datetime(2026, 6, 2, 0, 0, tzinfo=UTC), "kept"
    later.apply(load_schedule_yaml(FILE.replace("every:10s", "every:30s")))
    tick = later.get("tick")
    assert tick is not None and tick.next_run_at == NOW + timedelta(hours=1, seconds=30), "recomputed"


def test_prune_deletes_entries_the_file_does_not_list(schedules: Schedules) -> None:
    schedules.apply(load_schedule_yaml(FILE))
    plan = schedules.apply(load_schedule_yaml(FILE.split("nightly:")[0]), prune=True)
    assert ("delete", "nightly") in [(c.action, c.name) for c in plan.changes]
    assert [r.name for r in schedules.list()] == ["tick"]


def test_two_editors_cannot_silently_overwrite_each_other(schedules: Schedules) -> None:
    entry = parse_entry("job", {"task": "t", "spec": "every:1m"})
    version = schedules.save(entry)
    assert version == 1
    with pytest.raises(ScheduleConflict, match="already exists"):
        schedules.save(entry)
    # Both editors read version 1; the first write wins, the second is refused.
    first = parse_entry("job", {"task": "t", "spec": "every:2m"})
    second = parse_entry("job", {"task": "t", "spec": "every:3m"})
    assert schedules.save(first, version=1) == 2
    with pytest.raises(ScheduleConflict, match="changed since it was read \\(version 1\\)"):
        schedules.save(second, version=1)
    row = schedules.get("job")
    assert row is not None and row.spec == {"kind": "interval", "every": 120.0} and row.version == 2
    with pytest.raises(ScheduleConflict):
        schedules.delete("job", version=1)
    with pytest.raises(ScheduleConflict):
        schedules.set_enabled("job", False, version=1)


def test_enable_and_disable(schedules: Schedules, app: Stem) -> None:
    schedules.save(parse_entry("job", {"task": "t", "spec": "every:1m"}))
    assert schedules.set_enabled("job", False) == 2
    row = schedules.get("job")
    assert row is not None and not row.enabled
    later = Schedules(app.url, app.namespace, clock=lambda: NOW + timedelta(days=3))
    assert later.set_enabled("job", True) == 3
    row = later.get("job")
    assert row is not None and row.enabled and row.next_run_at == NOW + timedelta(days=3, minutes=1)
    with pytest.raises(ScheduleError, match="no schedule entry 'nope'"):
        schedules.set_enabled("nope", True)
    schedules.delete("job")
    assert schedules.list() == []


def test_edits_notify_running_beats(schedules: Schedules, app: Stem, database_url: str) -> None:
    channel = Channels(app.namespace).schedules
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        schedules.apply(load_schedule_yaml(FILE))
        notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [n.channel for n in notes] == [channel]
        schedules.set_enabled("tick", False)
        assert list(listener.notifies(timeout=2, stop_after=1))
        with psycopg.connect(database_url, autocommit=True) as other:  # beat's bookkeeping: no wake-up
            other.execute(
                sql.SQL("UPDATE {}.schedules SET next_run_at = now(), total_runs = 1").format(
                    sql.Identifier(app.namespace)
                )
            )
        assert list(listener.notifies(timeout=0.5)) == []
