"""Schedule specs: every kind, clear errors for bad ones, cron across DST, the misfire policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stem_pg.core.schedule_spec_parse import parse_spec, spec_from_json
from stem_pg.core.schedule_specs import (
    CalendarSpec,
    ClockedSpec,
    CronSpec,
    IntervalSpec,
    SolarSpec,
    SpecError,
    first_fire,
    next_fires,
)
from stem_pg.core.schedules import decide

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(moments: list[datetime], zone: ZoneInfo = BERLIN) -> list[str]:
    return [m.astimezone(zone).isoformat() for m in moments]


# -- each kind ---------------------------------------------------------------------


def test_interval_text_and_mapping_forms() -> None:
    assert parse_spec("every:5m") == IntervalSpec(300.0)
    assert parse_spec("every 90s") == IntervalSpec(90.0)
    assert parse_spec({"every": "1h30m"}) == IntervalSpec(5400.0)
    assert parse_spec({"every": 2}) == IntervalSpec(2.0)
    start = at("2026-01-01T00:00:00+00:00")
    assert IntervalSpec(5.0).next_after(start) == start + timedelta(seconds=5)


def test_interval_with_start_and_end_stays_on_its_grid() -> None:
    spec = parse_spec({"every": "1h", "start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-01T03:00:00Z"})
    assert isinstance(spec, IntervalSpec)
    assert spec.next_after(at("2025-12-31T12:00:00+00:00")) == at("2026-01-01T00:00:00+00:00")
    assert next_fires(spec, at("2026-01-01T00:30:00+00:00"), 5) == [
        at("2026-01-01T01:00:00+00:00"),
        at("2026-01-01T02:00:00+00:00"),
        at("2026-01-01T03:00:00+00:00"),
    ]


def test_cron_five_and_six_fields() -> None:
    spec = parse_spec("0 9 * * mon-fri")
    assert spec == CronSpec("0 9 * * mon-fri", "UTC")
    assert next_fires(spec, at("2026-01-02T10:00:00+00:00"), 2) == [
        at("2026-01-05T09:00:00+00:00"),
        at("2026-01-06T09:00:00+00:00"),
    ]
    every_second = parse_spec({"cron": "*/20 * * * * *"})  # six fields: seconds first
    assert next_fires(every_second, at("2026-01-01T00:00:00+00:00"), 3) == [
        at("2026-01-01T00:00:20+00:00"),
        at("2026-01-01T00:00:40+00:00"),
        at("2026-01-01T00:01:00+00:00"),
    ]
    assert parse_spec("@hourly") == CronSpec("@hourly", "UTC")


def test_cron_in_a_time_zone() -> None:
    spec = parse_spec({"cron": "0 9 * * *", "timezone": "America/New_York"})
    assert next_fires(spec, at("2026-07-01T00:00:00+00:00"), 1) == [at("2026-07-01T13:00:00+00:00")]
    assert parse_spec("0 9 * * *", timezone="Europe/Berlin") == CronSpec("0 9 * * *", "Europe/Berlin")


def test_clocked_fires_once() -> None:
    spec = parse_spec({"clocked": "2026-02-01T00:00:00Z"})
    assert spec == ClockedSpec(at("2026-02-01T00:00:00+00:00"))
    assert next_fires(spec, at("2026-01-01T00:00:00+00:00"), 5) == [at("2026-02-01T00:00:00+00:00")]
    assert spec.next_after(at("2026-02-01T00:00:00+00:00")) is None
    # Created after its time: it still fires once (the misfire policy decides).
    assert first_fire(spec, at("2026-03-01T00:00:00+00:00")) == at("2026-02-01T00:00:00+00:00")


def test_calendar_filters_all_have_to_match() -> None:
    spec = parse_spec(
        {
            "calendar": {"weekdays": ["mon", "fri"], "monthdays": [13], "hours": [9], "minutes": [0]},
            "timezone": "Europe/Berlin",
        }
    )
    assert isinstance(spec, CalendarSpec)
    # Friday the 13th (and Monday the 13th) only: weekday AND month day, unlike cron's OR.
    assert local(next_fires(spec, at("2026-01-01T00:00:00+00:00"), 3)) == [
        "2026-02-13T09:00:00+01:00",
        "2026-03-13T09:00:00+01:00",
        "2026-04-13T09:00:00+02:00",
    ]
    assert parse_spec({"calendar": {"months": ["dec"], "monthdays": [24], "hours": 18, "minutes": [30]}})


def test_solar_events_with_offset() -> None:
    spec = parse_spec({"solar": "sunset", "latitude": 52.52, "longitude": 13.405, "offset": "-15m"})
    assert spec == SolarSpec("sunset", 52.52, 13.405, -900.0)
    fires = next_fires(spec, at("2026-06-21T00:00:00+00:00"), 2)
    assert [f.date().isoformat() for f in fires] == ["2026-06-21", "2026-06-22"]
    berlin = fires[0].astimezone(BERLIN)
    assert (berlin.hour, berlin.minute // 10) in {(21, 1), (21, 2)}  # sunset ~21:33, minus 15 min
    noon = parse_spec({"solar": "noon", "latitude": 0, "longitude": 0})
    moment = noon.next_after(at("2026-03-20T00:00:00+00:00"))
    assert moment is not None and abs(moment - at("2026-03-20T12:07:00+00:00")) < timedelta(minutes=5)


def test_polar_night_skips_days_without_a_sunrise() -> None:
    spec = parse_spec({"solar": "sunrise", "latitude": 78.2, "longitude": 15.6})  # Svalbard
    moment = spec.next_after(at("2026-12-01T00:00:00+00:00"))
    assert moment is not None and moment > at("2027-02-01T00:00:00+00:00")


def test_json_round_trip_of_every_kind() -> None:
    for raw in (
        "every:5m",
        {"every": "1h", "start_at": "2026-01-01T00:00:00Z"},
        {"cron": "0 2 * * *", "timezone": "Europe/Berlin"},
        {"clocked": "2026-01-01T00:00:00+01:00"},
        {"calendar": {"hours": [9], "minutes": [0]}, "timezone": "Europe/Berlin"},
        {"solar": "dawn", "latitude": 1.5, "longitude": -2, "offset": "10m"},
    ):
        spec = parse_spec(raw)
        assert spec_from_json(spec.to_json()) == spec
        assert spec.describe()


# -- bad specs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"every": "5x"}, "every: '5x' is not a duration"),
        ("every: 5x", "'5x' is not a duration"),
        ({"every": "0s"}, "too short"),
        ({"cron": "61 * * * *"}, "cron: '61 * * * *': minute field '61' is not valid (allowed 0-59"),
        ({"cron": "0 25 * * *"}, "hour field '25' is not valid"),
        ({"cron": "* * * *"}, "has 4 fields; cron takes 5 (or 6, seconds first)"),
        ({"cron": "0 0 30 2 *"}, "never matches a real date"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        ({"clocked": "2026-01-01T00:00:00"}, "clocked: 2026-01-01T00:00:00 has no time zone"),
        ({"clocked": "tomorrow"}, "is not an ISO 8601 time"),
        ({"calendar": {"hours": [24]}}, "calendar.hours: 24 is not allowed: use 0-23"),
        ({"calendar": {"weekdays": ["funday"]}}, "calendar.weekdays: 'funday' is not allowed"),
        ({"calendar": {"hour": [1]}}, "calendar.hour: unknown key"),
        ({"solar": "moonrise", "latitude": 0, "longitude": 0}, "solar: 'moonrise' is not a solar event"),
        ({"solar": "sunset", "latitude": 91, "longitude": 0}, "latitude: must be a number from -90 to 90"),
        ({"every": "5m", "cron": "* * * * *"}, "a spec has one kind; got every, cron"),
        ({"every": "5m", "timezone": "UTC"}, "timezone: unknown key for an interval spec"),
        ({"nothing": 1}, "a spec mapping needs one of every, cron, clocked, calendar, solar"),
        ("tomorrow at nine", "is not a schedule"),
        (42, "must be text (every:5m, a cron line) or a mapping"),
        ({"every": "1h", "start_at": "2026-01-02T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}, "end_at:"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(raw: object, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    assert message in str(caught.value)


# -- cron across DST (Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00) -----


def berlin_cron(expression: str) -> CronSpec:
    spec = parse_spec({"cron": expression, "timezone": "Europe/Berlin"})
    assert isinstance(spec, CronSpec)
    return spec


def test_daily_job_in_the_spring_gap_runs_once_at_the_end_of_the_gap() -> None:
    fires = next_fires(berlin_cron("30 2 * * *"), at("2026-03-27T12:00:00+00:00"), 4)
    assert local(fires) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_several_fires_inside_the_gap_collapse_into_one() -> None:
    fires = next_fires(berlin_cron("*/15 2 * * *"), at("2026-03-28T12:00:00+00:00"), 2)
    assert local(fires) == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]


def test_hourly_job_across_the_spring_gap_stays_an_hour_apart() -> None:
    on_the_hour = next_fires(berlin_cron("0 * * * *"), at("2026-03-29T00:30:00+01:00"), 3)
    assert local(on_the_hour) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    quarter_past = next_fires(berlin_cron("15 * * * *"), at("2026-03-29T00:30:00+01:00"), 3)
    assert local(quarter_past) == [
        "2026-03-29T01:15:00+01:00",
        "2026-03-29T03:15:00+02:00",  # 02:15 does not exist: an every-hour job just skips it
        "2026-03-29T04:15:00+02:00",
    ]
    for fires in (on_the_hour, quarter_past):
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fires))


def test_daily_job_in_the_autumn_overlap_runs_once_at_its_first_occurrence() -> None:
    fires = next_fires(berlin_cron("30 2 * * *"), at("2026-10-24T12:00:00+00:00"), 3)
    assert local(fires) == [
        "2026-10-25T02:30:00+02:00",  # first of the two 02:30s
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_hourly_job_runs_in_both_repeated_hours() -> None:
    fires = next_fires(berlin_cron("30 * * * *"), at("2026-10-25T01:00:00+02:00"), 4)
    assert local(fires) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fires))


def test_starting_inside_the_repeated_hour() -> None:
    spec = berlin_cron("*/30 * * * *")
    # 02:50 CEST (the first 02:50): the next fire is 02:00 CET, one wall-clock hour "back".
    assert local([spec.next_after(at("2026-10-25T02:50:00+02:00"))]) == ["2026-10-25T02:00:00+01:00"]  # type: ignore[list-item]
    # 02:10 CET (the second pass): 02:30 CET.
    assert local([spec.next_after(at("2026-10-25T02:10:00+01:00"))]) == ["2026-10-25T02:30:00+01:00"]  # type: ignore[list-item]


def test_wall_clock_is_kept_on_both_sides_of_the_change() -> None:
    spec = berlin_cron("0 9 * * *")
    fires = next_fires(spec, at("2026-03-27T12:00:00+00:00"), 4)
    assert [f.astimezone(BERLIN).hour for f in fires] == [9, 9, 9, 9]
    assert [f.hour for f in fires] == [8, 7, 7, 7]  # in UTC the job moves by an hour


# -- misfire policy --------------------------------------------------------------------


def test_on_time_fire_moves_to_the_next_slot() -> None:
    spec = IntervalSpec(60.0, start_at=at("2026-01-01T00:00:00+00:00"))
    due = at("2026-01-01T00:01:00+00:00")
    decision = decide(spec, due=due, now=due + timedelta(seconds=0.2), misfire="run_once")
    assert (decision.fire, decision.fire_time, decision.next_run_at, decision.missed) == (
        True,
        due,
        at("2026-01-01T00:02:00+00:00"),
        False,
    )


def test_run_once_after_downtime_fires_once_then_resumes_after_now() -> None:
    spec = berlin_cron("0 * * * *")
    due = at("2026-01-01T10:00:00+01:00")
    now = at("2026-01-01T15:20:00+01:00")  # five slots missed
    decision = decide(spec, due=due, now=now, misfire="run_once")
    assert decision.fire and decision.fire_time == due and decision.missed
    assert decision.next_run_at == at("2026-01-01T16:00:00+01:00")


def test_skip_drops_a_late_fire_but_keeps_one_within_grace() -> None:
    spec = berlin_cron("0 * * * *")
    due = at("2026-01-01T10:00:00+01:00")
    late = decide(spec, due=due, now=due + timedelta(minutes=5), misfire="skip", grace=60)
    assert not late.fire and late.next_run_at == at("2026-01-01T11:00:00+01:00")
    in_grace = decide(spec, due=due, now=due + timedelta(seconds=30), misfire="skip", grace=60)
    assert in_grace.fire


def test_finished_clocked_entry_has_no_next_run() -> None:
    spec = ClockedSpec(at("2026-01-01T00:00:00+00:00"))
    decision = decide(spec, due=spec.clocked, now=spec.clocked + timedelta(hours=1), misfire="run_once")
    assert decision.fire and decision.next_run_at is None
