"""Schedule files: Stem's YAML format, safe loading, errors naming file, line, entry and key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stem_pg.config.schedule_file import load_schedule_file, load_schedule_yaml, parse_spec_text
from stem_pg.core.errors import ScheduleError
from stem_pg.core.schedule_specs import CronSpec, IntervalSpec, SolarSpec
from stem_pg.core.schedules import parse_entry

GOOD = """\
cleanup-temp-files:
  task: maintenance.cleanup
  spec: every:5m
  queue: maintenance
  args:
    path: /tmp
midnight-report:
  task: reports.generate
  spec:
    cron: '0 0 * * *'
    timezone: America/New_York
  kwargs:
    report: daily-summary
  priority: 7
  jitter: 30s
  misfire: skip
  misfire_grace: 2m
solar-check:
  task: solar.notify
  spec:
    solar: sunset
    latitude: 40.7128
    longitude: -74.0060
    offset: -15m
  enabled: false
one-off:
  task: billing.reconcile
  spec:
    clocked: 2027-02-01T00:00:00Z
  expires_at: 2027-03-01T00:00:00Z
"""


def test_stems_example_file_loads() -> None:
    entries = {e.name: e for e in load_schedule_yaml(GOOD, source="schedules.yaml")}
    assert list(entries) == ["cleanup-temp-files", "midnight-report", "solar-check", "one-off"]
    cleanup = entries["cleanup-temp-files"]
    assert (cleanup.spec, cleanup.queue, dict(cleanup.kwargs)) == (
        IntervalSpec(300.0),
        "maintenance",
        {"path": "/tmp"},
    )
    report = entries["midnight-report"]
    assert report.spec == CronSpec("0 0 * * *", "America/New_York")
    assert (report.priority, report.jitter, report.misfire, report.misfire_grace) == (7, 30.0, "skip", 120.0)
    assert entries["solar-check"].spec == SolarSpec("sunset", 40.7128, -74.006, -900.0)
    assert entries["solar-check"].enabled is False
    assert entries["one-off"].expires_at == datetime(2027, 3, 1, tzinfo=UTC)


def test_every_bad_entry_is_reported_with_file_line_entry_and_key() -> None:
    text = """\
ok:
  task: t
  spec: every:1m
bad-every:
  task: t
  spec: {every: 5x}
bad-cron:
  task: t
  spec:
    cron: 61 * * * *
bad-zone:
  task: t
  spec: {cron: "0 9 * * *", timezone: Mars/Olympus}
"""
    with pytest.raises(ScheduleError) as caught:
        load_schedule_yaml(text, source="schedules.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        "schedules.yaml:6: entry 'bad-every': spec.every: '5x' is not a duration"
        " (use e.g. 30s, 5m, 1h30m, 2d)",
        "schedules.yaml:10: entry 'bad-cron': spec.cron: '61 * * * *': minute field '61' is not valid"
        " (allowed 0-59, *, lists, ranges, steps)",
        "schedules.yaml:13: entry 'bad-zone': spec.timezone: unknown time zone 'Mars/Olympus'"
        " (use an IANA name like Europe/Berlin)",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x:\n  spec: every:1m\n", "entry 'x': task: is required"),
        ("x:\n  task: t\n", "entry 'x': spec: is required"),
        ("x:\n  task: t\n  spec: every:1m\n  colour: red\n", "entry 'x': colour: unknown key"),
        ("x:\n  task: t\n  spec: every:1m\n  args: [1, 2]\n", "args: stem_pg tasks take keyword arguments"),
        ("x:\n  task: t\n  spec: every:1m\n  misfire: burst\n", "misfire: 'burst' is not a policy"),
        ("x:\n  task: t\n  spec: every:1m\n  enabled: maybe\n", "enabled: must be true or false"),
        ("x:\n  task: t\n  spec: every:1m\n  jitter: soon\n", "jitter: 'soon' is not a duration"),
        ("x:\n  task: t\n  spec: every:1m\n  priority: high\n", "priority: must be a whole number"),
        ("'bad name!':\n  task: t\n  spec: every:1m\n", "is not a schedule name"),
        ("x:\n  task: t\n  spec: every:1m\n  args: {a: 1}\n  kwargs: {a: 2}\n", "kwargs.a: is given in both"),
        (
            "x:\n  task: t\n  spec: every:1m\nx:\n  task: u\n  spec: every:1m\n",
            ":4: duplicate key 'x' (first at line 1)",
        ),
        ("x:\n  task: t\n  task: u\n  spec: every:1m\n", ":3: entry 'x': duplicate key 'task'"),
        ("x: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
        ("x: [unclosed\n", "s.yaml:2: invalid YAML"),
        ("- a\n- b\n", "a schedule file is a mapping of entry names to entries"),
    ],
)
def test_mistakes_get_clear_errors(body: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        load_schedule_yaml(body, source="s.yaml")
    assert message in str(caught.value)


def test_entry_level_timezone_applies_to_a_cron_line() -> None:
    entry = parse_entry("x", {"task": "t", "spec": "0 9 * * *", "timezone": "Europe/Berlin"})
    assert entry.spec == CronSpec("0 9 * * *", "Europe/Berlin")
    with pytest.raises(ScheduleError, match="entry 'x': timezone: unknown time zone 'Nowhere'"):
        parse_entry("x", {"task": "t", "spec": "0 9 * * *", "timezone": "Nowhere"})


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="schedule file not found"):
        load_schedule_file(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_schedule_file(empty) == []


def test_spec_text_from_the_command_line() -> None:
    assert parse_spec_text("every:5m") == IntervalSpec(300.0)
    assert parse_spec_text("every: 5m") == IntervalSpec(300.0)
    assert parse_spec_text("* * * * *") == CronSpec("* * * * *")
    assert parse_spec_text("cron: 0 9 * * *", timezone="Europe/Berlin") == CronSpec(
        "0 9 * * *", "Europe/Berlin"
    )
    assert parse_spec_text("{solar: noon, latitude: 1, longitude: 2}") == SolarSpec("noon", 1.0, 2.0)
    with pytest.raises(ScheduleError, match="--spec: cron: '61 \\* \\* \\* \\*': minute field"):
        parse_spec_text("cron: 61 * * * *")
