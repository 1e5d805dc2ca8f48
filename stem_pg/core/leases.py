"""Whether a worker may start a job it leased: a pure rule over the worker's own clock.

A worker knows its lease only from what the database acknowledged: a claim or an
extension committed at some moment after the worker sent it, so the lease ends no
earlier than the send time plus its seconds (the ``deadline``, on the worker's
monotonic clock). A job is started only while that deadline is comfortably ahead
(a heartbeat must be able to extend the lease before it runs out), while the lease
was not found lost, and while no connection failed since the lease was last
confirmed (a server that restarted may have lost what it acknowledged).
"""

from __future__ import annotations

import enum

#: A job is started only with more than this share of its lease left ...
START_MARGIN_SHARE = 0.25
#: ... or this many seconds, whichever is less (long leases need no more).
START_MARGIN_MAX = 2.0


class LeaseCheck(enum.Enum):
    """What ``check_lease`` says about starting a leased job now."""

    #: Start it.
    VALID = "valid"
    #: A connection failed since the lease was last confirmed: wait for the heartbeat to
    #: extend it again (or to find it lost).
    UNCONFIRMED = "unconfirmed"
    #: The lease runs out within the margin, or ran out, by the worker's clock: hand it back.
    EXPIRING = "expiring"
    #: The heartbeat found another holder (or none): drop it, another worker may run it.
    LOST = "lost"


def start_margin(lease_seconds: float) -> float:
    """How much of a lease of ``lease_seconds`` must be left to start a job."""
    # Asked for every job a worker starts: comparisons, as min() and max() cost ten times more.
    share = lease_seconds * START_MARGIN_SHARE if lease_seconds > 0.0 else 0.0
    return share if share < START_MARGIN_MAX else START_MARGIN_MAX


def start_by(*, sent: float, seconds: float) -> float:
    """The last moment a job may start on a lease of ``seconds`` that the database granted
    (claim or extension) for a request sent at ``sent``: the lease's end at the earliest,
    less the margin."""
    return sent + seconds - start_margin(seconds)


def check_lease(*, lost: bool, confirmed: bool, start_by: float, now: float) -> LeaseCheck:
    """May a job start at ``now``? ``start_by`` comes from ``start_by()`` (same clock as
    ``now``), ``confirmed`` says whether no connection failed since it was set."""
    if lost:
        return LeaseCheck.LOST
    if now >= start_by:
        return LeaseCheck.EXPIRING
    if not confirmed:
        return LeaseCheck.UNCONFIRMED
    return LeaseCheck.VALID
