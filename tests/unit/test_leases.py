"""The start rule of leased jobs (stem_pg.core.leases: pure, on the worker's own clock) and the
gate that applies it before every start (stem_pg.worker.leases), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from stem_pg.core.leases import START_MARGIN_MAX, LeaseCheck, check_lease, start_by, start_margin
from stem_pg.db.stores.rows import ClaimedJob, Release
from stem_pg.worker.context import Inflight
from stem_pg.worker.leases import LeaseGate, leased
from stem_pg.worker.settings import WorkerSettings
from stem_pg.worker.state import WorkerState


def check(*, lost: bool = False, confirmed: bool = True, left: float, lease: float = 2.0) -> LeaseCheck:
    """The check at 100.0 of a lease of ``lease`` seconds that ends ``left`` seconds later."""
    last = start_by(sent=100.0 + left - lease, seconds=lease)
    return check_lease(lost=lost, confirmed=confirmed, start_by=last, now=100.0)


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


# -- the gate in front of every start (stem_pg.worker.leases) -----------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gate(clock: Clock) -> tuple[LeaseGate, WorkerState, list[int]]:
    state = WorkerState(WorkerSettings(queues=("default",), lease_seconds=2.0, worker_id="w"))
    wakes: list[int] = []
    return LeaseGate(state, wake_leases=lambda: wakes.append(1), clock=clock), state, wakes


def _entry(clock: Clock, state: WorkerState) -> Inflight:
    job = ClaimedJob("job-1", "t", "default", 0, None, None, 1, 0, None, None, True)
    entry = Inflight(job, "token-1", 2.0)
    leased(entry, sent=clock.now, epoch=state.lease_epoch, seconds=2.0)
    return entry


def test_the_gate_starts_a_job_on_a_fresh_lease_and_hands_back_one_that_ran_out() -> None:
    clock = Clock()
    gate, state, _ = _gate(clock)
    entry = _entry(clock, state)
    assert asyncio.run(gate.admit(entry)) is None
    clock.now += 30.0  # frozen past the lease (SIGSTOP), no heartbeat could tell it yet
    assert asyncio.run(gate.admit(entry)) == Release("job-1", "token-1")
    entry.lost = True
    assert asyncio.run(gate.admit(_entry(clock, state))) is None
    assert asyncio.run(gate.admit(entry)) == Release("job-1", "token-1")


def test_after_a_connection_failure_the_gate_waits_for_the_heartbeat() -> None:
    clock = Clock()
    gate, state, wakes = _gate(clock)
    entry = _entry(clock, state)
    state.lease_epoch += 1  # a connection failed: the lease is not confirmed any more

    async def main() -> tuple[bool, Release | None]:
        waiting = asyncio.create_task(gate.admit(entry))
        await asyncio.sleep(0.1)
        still_waiting = not waiting.done()
        leased(entry, sent=clock.now, epoch=state.lease_epoch, seconds=2.0)  # the heartbeat extended it
        return still_waiting, await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()) == (True, None)
    assert wakes  # it asked the heartbeat to beat now

    state.lease_epoch += 1
    entry.lost = True  # ... or the heartbeat found it lost
    assert asyncio.run(asyncio.wait_for(gate.admit(entry), 5)) == Release("job-1", "token-1")


@pytest.mark.parametrize("lost", [False, True])
@pytest.mark.parametrize("confirmed", [False, True])
@pytest.mark.parametrize("later", [0.0, 1.49, 1.5, 1.51, 30.0])
def test_startable_is_the_rule_s_valid_spelled_out(lost: bool, confirmed: bool, later: float) -> None:
    """``startable`` (asked before every job, without ``check``'s calls) agrees with the rule."""
    clock = Clock()
    gate, state, _ = _gate(clock)
    entry = _entry(clock, state)  # a lease of 2 s: startable for 1.5 s
    entry.lost = lost
    state.lease_epoch += 0 if confirmed else 1
    clock.now += later
    assert gate.startable(entry) is (gate.check(entry) is LeaseCheck.VALID)
