"""Schedule specs (Stem's interval, cron, clocked, calendar and solar) and their fire times.

Pure: no database, no YAML. Each kind is a frozen dataclass that computes its
next fire time, its stored JSON form and a description for people; reading a
spec from text or a mapping (with errors that name the key) is
``schedule_spec_parse``'s job. Cron matching (and its time-zone policy) lives in
``stem_pg.core.cron``; the sun's position is astral's. Every fire time is an
aware UTC datetime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stem_pg.core.cron import cron_next

#: The shortest interval beat accepts: a fire is a database round trip.
MIN_INTERVAL = 1.0
SOLAR_EVENTS = ("sunrise", "sunset", "noon", "dawn", "dusk")
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i + 1 for i, m in enumerate(_MONTH_NAMES)}
#: A calendar spec's filters: key -> (low, high, names); their order is the stored JSON's.
CALENDAR_FIELDS: dict[str, tuple[int, int, dict[str, int]]] = {
    "months": (1, 12, _MONTHS),
    "weekdays": (0, 6, _WEEKDAYS),
    "monthdays": (1, 31, {}),
    "hours": (0, 23, {}),
    "minutes": (0, 59, {}),
}


class SpecError(ValueError):
    """A bad spec; ``path`` is the key inside the spec (empty for the spec itself)."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class IntervalSpec:
    """Every ``every`` seconds; on the grid ``start_at + k * every`` when a start is given."""

    every: float
    start_at: datetime | None = None
    end_at: datetime | None = None

    def next_after(self, after: datetime) -> datetime | None:
        try:
            if self.start_at is None:
                moment = after + timedelta(seconds=self.every)
            elif after < self.start_at:
                moment = self.start_at
            else:
                step = round(self.every * 1_000_000)
                passed = (after - self.start_at) // timedelta(microseconds=1)
                moment = self.start_at + timedelta(microseconds=(passed // step + 1) * step)
        except OverflowError:  # past the year 9999: there is no next time
            return None
        return None if self.end_at is not None and moment > self.end_at else moment

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "interval", "every": self.every}
        if self.start_at:
            out["start_at"] = self.start_at.isoformat()
        if self.end_at:
            out["end_at"] = self.end_at.isoformat()
        return out

    def describe(self) -> str:
        return f"every {_seconds_text(self.every)}"


@dataclass(frozen=True)
class CronSpec:
    """A 5-field cron expression (or 6 fields, seconds first) in a time zone."""

    cron: str
    timezone: str = "UTC"

    def next_after(self, after: datetime) -> datetime | None:
        fields = self.cron.split()
        hour = fields[2] if len(fields) == 6 else fields[1] if len(fields) == 5 else ""
        return cron_next(self.cron, self.timezone, after, day_or=True, every_hour=hour == "*")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "cron", "cron": self.cron, "timezone": self.timezone}

    def describe(self) -> str:
        return f"cron {self.cron} ({self.timezone})"


@dataclass(frozen=True)
class ClockedSpec:
    """Once, at ``clocked``."""

    clocked: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.clocked if self.clocked > after else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "clocked", "clocked": self.clocked.isoformat()}

    def describe(self) -> str:
        return f"once at {self.clocked.isoformat()}"


@dataclass(frozen=True)
class CalendarSpec:
    """Celery-style filters; every given list must match, a missing one matches anything."""

    months: tuple[int, ...] | None = None
    weekdays: tuple[int, ...] | None = None
    monthdays: tuple[int, ...] | None = None
    hours: tuple[int, ...] | None = None
    minutes: tuple[int, ...] | None = None
    timezone: str = "UTC"

    def to_cron(self) -> str:
        def field(values: tuple[int, ...] | None) -> str:
            return "*" if values is None else ",".join(str(v) for v in values)

        parts = (self.minutes, self.hours, self.monthdays, self.months, self.weekdays)
        return " ".join(field(p) for p in parts)

    def next_after(self, after: datetime) -> datetime | None:
        return cron_next(self.to_cron(), self.timezone, after, day_or=False, every_hour=self.hours is None)

    def to_json(self) -> dict[str, Any]:
        fields = {k: list(v) for k in CALENDAR_FIELDS if (v := getattr(self, k)) is not None}
        return {"kind": "calendar", "calendar": fields, "timezone": self.timezone}

    def describe(self) -> str:
        shown = ", ".join(f"{k} {','.join(map(str, v))}" for k, v in self.to_json()["calendar"].items())
        return f"calendar {shown or 'every minute'} ({self.timezone})"


@dataclass(frozen=True)
class SolarSpec:
    """A solar event at a place, shifted by ``offset`` seconds (negative: before it)."""

    solar: str
    latitude: float
    longitude: float
    offset: float = 0.0

    def next_after(self, after: datetime) -> datetime | None:
        import astral.sun  # only where a solar schedule runs (beat)

        observer = astral.Observer(latitude=self.latitude, longitude=self.longitude)
        event: Callable[..., datetime] = getattr(astral.sun, self.solar)
        shift = timedelta(seconds=self.offset)
        day = after.astimezone(UTC).date() - timedelta(days=2)
        for _ in range(400):  # polar night or day skips days; a year covers every case
            day += timedelta(days=1)
            try:
                moment = (event(observer, day, tzinfo=UTC) + shift).replace(microsecond=0)
            except ValueError:  # the sun does not rise or set that day there
                continue
            if moment > after:
                return moment
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "solar",
            "solar": self.solar,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "offset": self.offset,
        }

    def describe(self) -> str:
        offset = ""
        if self.offset:
            offset = f" {'-' if self.offset < 0 else '+'}{_seconds_text(abs(self.offset))}"
        return f"{self.solar}{offset} at {self.latitude:.4f},{self.longitude:.4f}"


Spec = IntervalSpec | CronSpec | ClockedSpec | CalendarSpec | SolarSpec


def first_fire(spec: Spec, now: datetime) -> datetime | None:
    """When a new (or changed, or re-enabled) entry fires first.

    A clocked time that already passed still fires once (the misfire policy decides).
    """
    if isinstance(spec, ClockedSpec):
        return spec.clocked
    return spec.next_after(now)


def next_fires(spec: Spec, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after`` (fewer if the spec ends)."""
    out: list[datetime] = []
    moment: datetime | None = after
    while moment is not None and len(out) < count:
        moment = spec.next_after(moment)
        if moment is not None:
            out.append(moment)
    return out


def _seconds_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
