"""Durations have a maximum (3650 days) wherever they are read, and no fire time overflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stem_pg.core.durations import MAX_DURATION, DurationTooLong, parse_duration
from stem_pg.core.schedule_spec_parse import parse_spec
from stem_pg.core.schedule_specs import IntervalSpec, SpecError
from stem_pg.core.workflows import WorkflowError, seconds


def test_the_longest_duration_is_3650_days() -> None:
    assert parse_duration("3650d") == MAX_DURATION == timedelta(days=3650).total_seconds()
    for text in ("3651d", "99999999999999999999d", "1e400", "522w"):
        with pytest.raises(DurationTooLong, match=r"is longer than the maximum, 3650d \(about 10 years\)$"):
            parse_duration(text)
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration("nan")


@pytest.mark.parametrize("every", ["99999999999999999999d", 1e30, 10**20])
def test_an_interval_beyond_the_maximum_is_a_spec_error_naming_the_key(every: object) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"every": every})
    assert caught.value.path == ("every",)
    assert caught.value.message == f"{every!r} is longer than the maximum, 3650d (about 10 years)"


def test_a_fire_time_past_the_year_9999_is_none_not_an_overflow() -> None:
    start = datetime(9999, 1, 1, tzinfo=UTC)
    assert IntervalSpec(MAX_DURATION).next_after(start) is None
    assert IntervalSpec(MAX_DURATION, start_at=start).next_after(start) is None


def test_workflow_limits_have_the_maximum_too() -> None:
    with pytest.raises(WorkflowError, match="longer than the maximum"):
        seconds(1e30, what="max_run_time")
