"""Cron expressions in a time zone: croniter matches the fields, this module applies the DST policy.

croniter walks naive wall-clock times (pure calendar arithmetic); each is then
mapped to UTC instants by one policy, the same for cron and calendar specs:

* a wall-clock time that does not exist (the spring-forward gap, e.g. 02:30 on
  2026-03-29 in Europe/Berlin) fires once, at the end of the gap (03:00 CEST);
  several fire times inside one gap collapse into that one fire;
* a wall-clock time that happens twice (the fall-back overlap, e.g. 02:30 on
  2026-10-25 in Europe/Berlin) fires once, at its first occurrence.

Expressions whose hour field is ``*`` run every hour and are exempt: they
follow real time, so the skipped hour has no fire and the repeated hour has
two, and consecutive fires stay an hour apart. That is Vixie cron's behaviour.
Six fields mean seconds first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

#: How far a DST shift can move a wall-clock time (a margin over the real 2 h maximum).
_DST_MARGIN = timedelta(hours=3)
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRON_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-6 or sun-sat")


def cron_valid(text: str) -> bool:
    """Whether croniter accepts ``text`` (5 fields, or 6 with seconds first)."""
    from croniter import CroniterError, croniter  # with dateutil: only where schedules are parsed

    try:
        croniter(text, datetime(2000, 1, 1), second_at_beginning=len(text.split()) == 6)
    except (CroniterError, ValueError, KeyError, TypeError):
        return False
    return True


def invalid_field(text: str) -> str | None:
    """Which field of ``text`` croniter refuses, as a message; None if they all pass."""
    fields = text.split()
    six = len(fields) == 6
    names = ("second", *_CRON_FIELDS) if six else _CRON_FIELDS
    ranges = ("0-59", *_CRON_RANGES) if six else _CRON_RANGES
    for i, field in enumerate(fields):
        probe = " ".join(field if j == i else "*" for j in range(len(fields)))
        if not cron_valid(probe):
            return f"{names[i]} field {field!r} is not valid (allowed {ranges[i]}, *, lists, ranges, steps)"
    return None


def cron_next(
    text: str, timezone: str, after: datetime, *, day_or: bool, every_hour: bool
) -> datetime | None:
    """The first fire after ``after``: the earliest instant, under the DST policy, of the
    wall-clock times croniter finds. Raises croniter's CroniterBadDateError if none exists."""
    from croniter import croniter

    zone = ZoneInfo(timezone)
    start = after.astimezone(zone).replace(tzinfo=None)
    if zone.utcoffset(start - _DST_MARGIN) != zone.utcoffset(start + _DST_MARGIN):
        start -= _DST_MARGIN  # near a shift: earlier wall times may map to later instants
    walker = croniter(text, start, day_or=day_or, second_at_beginning=len(text.split()) == 6)
    best: datetime | None = None
    for _ in range(200_000):
        wall = walker.get_next(datetime)
        moments = _instants(wall, zone, every_hour=every_hour)
        if not moments:
            continue
        for moment in moments:
            if moment > after and (best is None or moment < best):
                best = moment
        if best is not None and moments[0] >= best:
            return best
    return best


def _instants(wall: datetime, zone: tzinfo, *, every_hour: bool) -> list[datetime]:
    """The UTC instants of a naive wall-clock time under the DST policy (earliest first)."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early == late:
        return [early]
    if early.astimezone(zone).replace(tzinfo=None) == wall:  # it happens twice
        return [early, late] if every_hour else [early]
    if every_hour:  # it does not exist, and an every-hour job just has no run in that hour
        return []
    return [_gap_end(min(early, late), max(early, late), zone)]


def _gap_end(low: datetime, high: datetime, zone: tzinfo) -> datetime:
    """The instant the clocks jumped forward, between ``low`` and ``high`` (to the second)."""
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)
