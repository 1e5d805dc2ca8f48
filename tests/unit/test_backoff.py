"""The reconnect policy (stem_pg.core.backoff): growing, jittered, capped delays; one
warning's worth of news when an outage starts and one when it ends."""

from __future__ import annotations

import pytest

from stem_pg.core.backoff import RECONNECT_CAP, Outage, Recovery


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _upper(low: float, high: float) -> float:
    return high


def test_delays_double_from_the_first_to_the_cap() -> None:
    outage = Outage(0.1, 3.0, uniform=_upper)
    delays = [outage.failed().delay for _ in range(9)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0, 3.0])


def test_jitter_stays_between_half_and_the_whole_delay() -> None:
    outage = Outage()
    for _ in range(200):
        failure = outage.failed()
        ceiling = min(RECONNECT_CAP, 0.1 * 2 ** (failure.attempts - 1))
        assert ceiling / 2 <= failure.delay <= ceiling


def test_only_the_first_failure_starts_an_outage_and_success_reports_it_once() -> None:
    clock = Clock()
    outage = Outage(clock=clock)
    assert outage.recovered() is None, "a success with no failure before is no news"
    starts = [outage.failed().starts for _ in range(5)]
    assert starts == [True, False, False, False, False]
    assert outage.ongoing
    clock.now += 12.5
    assert outage.recovered() == Recovery(seconds=12.5, attempts=5)
    assert outage.recovered() is None
    assert not outage.ongoing


def test_after_a_recovery_the_backoff_starts_over() -> None:
    outage = Outage(0.1, 3.0, uniform=_upper)
    for _ in range(6):
        outage.failed()
    outage.recovered()
    failure = outage.failed()
    assert failure.starts and failure.delay == pytest.approx(0.1) and failure.attempts == 1


def test_recovery_says_how_long_and_how_many_attempts() -> None:
    assert Recovery(10.04, 7).describe() == "after 10.0 s (7 failed attempts)"
    assert Recovery(0.1, 1).describe() == "after 0.1 s (1 failed attempt)"


@pytest.mark.parametrize("first, cap", [(0.0, 3.0), (0.1, -1.0), (float("nan"), 1.0)])
def test_nonsense_bounds_are_refused(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Outage(first, cap)
