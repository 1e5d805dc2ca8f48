"""Human units: the durations, rates and shares stem observe, stem check and stem worker status
--follow print (an uptime reads 2h 05m, never 7512.406)."""

from __future__ import annotations

import pytest

from stem_pg.core.heartbeats import Beat
from stem_pg.core.human import count_text, duration_text, percent_text, rate_text
from stem_pg.core.observe import WorkerView, check_view, check_window, table, with_beats


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"), (0.0123, "12ms"), (0.35, "350ms"), (0.9999, "1.0s"), (4.24, "4.2s"), (9.96, "10.0s"),
        (42.9, "42s"), (60, "1m 00s"), (425, "7m 05s"), (3599, "59m 59s"), (3600, "1h 00m"),
        (7512.406, "2h 05m"), (86399, "23h 59m"), (86400, "1d 00h"), (273600, "3d 04h"), (-95, "-1m 35s"),
    ],
)  # fmt: skip
def test_durations_read_as_people_read_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_rates_shares_and_counts() -> None:
    assert [rate_text(n, m) for n, m in ((0, 1), (3, 1), (4, 5), (1, 15), (600, 5))] == [
        "0/min", "3/min", "0.8/min", "0.1/min", "120/min",
    ]  # fmt: skip
    assert [percent_text(f) for f in (0, 0.005, 0.25, 1 / 3)] == ["0%", "0.5%", "25%", "33.33%"]
    assert count_text(1520) == "1,520"


def test_a_worker_row_takes_the_counts_of_its_latest_beat() -> None:
    row = WorkerView("w1", "h", 7, ["q"], 4, "alive", 7512.4, 2.5)
    beat = Beat("w1", "alive", "h", 7, 4, 3, 1520, 4, 7512.4)
    headers, cells = table("workers", with_beats([row], {"w1": beat, "w2": beat}))
    assert dict(zip(headers, cells[0], strict=True)) == {
        "worker": "w1", "status": "alive", "host": "h", "pid": "7", "queues": "q", "in flight": "3/4",
        "processed": "1,520", "failed": "4", "uptime": "2h 05m", "last beat": "2.5s ago",
    }  # fmt: skip
    assert table("workers", [row])[1][0][5:8] == ["-/4", "-", "-"]


def test_unknown_views_and_windows_name_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown view 'job': choose one of queues, workers, dlq, schedules"):
        check_view("job")
    with pytest.raises(ValueError, match="unknown window '2m': choose one of 1m, 5m, 15m"):
        check_window("2m")
