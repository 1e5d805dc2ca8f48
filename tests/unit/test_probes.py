"""``stem check``'s conditions without a database: limits parsed, violations named."""

from __future__ import annotations

import pytest

from stem_pg.core.probes import LateSchedule, Limits, QueueRow, parse_rate, readings, summary, violations


@pytest.mark.parametrize(
    ("text", "fraction"), [("1%", 0.01), ("0.5 %", 0.005), ("0.02", 0.02), ("100%", 1.0)]
)
def test_rates_are_percentages_or_fractions(text: str, fraction: float) -> None:
    assert parse_rate(text) == pytest.approx(fraction)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("banana", "--max-failed-rate: 'banana' is not a rate (use e.g. 1% or 0.01)"),
        ("150%", "--max-failed-rate: '150%' must be between 0% and 100%"),
        ("-1%", "--max-failed-rate: '-1%' must be between 0% and 100%"),
        ("2", "--max-failed-rate: '2' must be between 0% and 100%"),
        ("nan%", "--max-failed-rate: 'nan%' is not a rate (use e.g. 1% or 0.01)"),
    ],
)
def test_bad_rates_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rate(text, what="--max-failed-rate")
    assert str(caught.value) == message


def test_each_violation_is_one_line_with_the_measured_value_and_the_limit() -> None:
    rows = [QueueRow("q1", 4, 400.0, 10, 1, 0.1), QueueRow("q2", 0, None, 0, 0, None)]
    checked = readings(rows, [["q1"], ["q1", "q2"]], [])
    limits = Limits(max_age=300, max_failed_rate=0.05, min_workers=2, max_schedule_lag=30)
    assert violations(limits, checked, [LateSchedule("nightly", 95)], workers_alive=2) == [
        "queue 'q1': oldest ready job waits 6m 40s, more than --max-age 5m 00s (4 ready)",
        "queue 'q1': 10% of jobs failed in the last 15 minutes (1 of 10), more than --max-failed-rate 5%",
        "queue 'q2': 1 alive workers consume it, fewer than --min-workers 2",
        "schedule 'nightly': next run overdue by 1m 35s, more than --max-schedule-lag 30s",
    ]


def test_selected_queues_unknown_to_the_view_are_idle_and_an_empty_namespace_counts_workers() -> None:
    checked = readings([QueueRow("q1", 1, 5.0, 0, 0, None)], [], ["idle"])
    assert [(q.queue, q.ready, q.oldest_ready_age, q.workers) for q in checked] == [("idle", 0, None, 0)]
    assert violations(Limits(min_workers=1), [], [], workers_alive=0) == [
        "workers: 0 alive, fewer than --min-workers 1"
    ]
    assert summary(Limits(max_age=60), checked, workers_alive=3) == (
        "ok: queues idle; 3 workers alive; within max-age 1m 00s"
    )
