"""The start rule of leased jobs (stem_pg.core.leases): pure, on the worker's own clock."""

from __future__ import annotations

import pytest

from stem_pg.core.leases import START_MARGIN_MAX, LeaseCheck, check_lease, start_margin


def check(*, lost: bool = False, confirmed: bool = True, left: float, lease: float = 2.0) -> LeaseCheck:
    return check_lease(lost=lost, confirmed=confirmed, deadline=100.0 + left, now=100.0, lease_seconds=lease)


def test_a_fresh_confirmed_lease_may_start() -> None:
    assert check(left=2.0) is LeaseCheck.VALID
    assert check(left=0.51) is LeaseCheck.VALID


def test_a_lost_lease_never_starts_whatever_time_is_left() -> None:
    assert check(lost=True, left=2.0) is LeaseCheck.LOST
    assert check(lost=True, confirmed=False, left=-5.0) is LeaseCheck.LOST


@pytest.mark.parametrize("left", [0.5, 0.1, 0.0, -0.01, -30.0])
def test_a_lease_within_the_margin_or_past_its_end_is_handed_back(left: float) -> None:
    """A worker frozen past its lease (SIGSTOP) wakes up with the deadline behind it."""
    assert check(left=left) is LeaseCheck.EXPIRING
    assert check(confirmed=False, left=left) is LeaseCheck.EXPIRING


def test_an_unconfirmed_lease_waits_for_the_heartbeat() -> None:
    assert check(confirmed=False, left=2.0) is LeaseCheck.UNCONFIRMED


@pytest.mark.parametrize(
    ("lease", "margin"), [(0.5, 0.125), (2.0, 0.5), (8.0, 2.0), (30.0, START_MARGIN_MAX), (0.0, 0.0)]
)
def test_the_margin_is_a_quarter_of_the_lease_at_most_two_seconds(lease: float, margin: float) -> None:
    assert start_margin(lease) == pytest.approx(margin)
    # Right after a claim or a heartbeat, a third of the lease at most has gone by: the
    # heartbeat interval leaves every job startable.
    assert check(left=lease * 2 / 3, lease=lease) is (LeaseCheck.VALID if lease else LeaseCheck.EXPIRING)
