"""Reading schedule specs: the text forms (``every:5m``, a cron line) and the mapping forms.

Strict, so that a typo fails when an entry is saved rather than when beat
reads it: unknown keys, bad durations, time zones and cron lines raise
SpecError naming the key inside the spec. The stored JSON form is read back
the same way (``spec_from_json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stem_pg.core.cron import cron_next, cron_valid, invalid_field
from stem_pg.core.durations import MAX_DURATION, MAX_DURATION_TEXT, DurationTooLong, parse_duration
from stem_pg.core.schedule_specs import (
    CALENDAR_FIELDS,
    MIN_INTERVAL,
    SOLAR_EVENTS,
    CalendarSpec,
    ClockedSpec,
    CronSpec,
    IntervalSpec,
    SolarSpec,
    Spec,
    SpecError,
)

_CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
#: The key that names each kind in the mapping form (``every: 5m`` is an interval).
KIND_KEYS = {
    "interval": "every",
    "cron": "cron",
    "clocked": "clocked",
    "calendar": "calendar",
    "solar": "solar",
}
_ALLOWED = {
    "interval": {"kind", "every", "start_at", "end_at"},
    "cron": {"kind", "cron", "timezone"},
    "clocked": {"kind", "clocked"},
    "calendar": {"kind", "calendar", "timezone"},
    "solar": {"kind", "solar", "latitude", "longitude", "offset"},
}


def parse_spec(value: object, *, timezone: str | None = None) -> Spec:
    """A spec from its text (``every:5m``, ``every 5m``, a cron line) or mapping form.

    ``timezone`` is the default zone for cron and calendar specs that name none.
    Raises SpecError naming the key inside the spec.
    """
    if isinstance(value, str):
        return _parse_text(value.strip(), timezone)
    if not isinstance(value, Mapping):
        raise SpecError((), f"must be text (every:5m, a cron line) or a mapping, got {_kind_of(value)}")
    kind = _kind(value)
    unknown = sorted(set(value) - _ALLOWED[kind])
    if unknown:
        allowed = ", ".join(sorted(_ALLOWED[kind] - {"kind"}))
        article = "an" if kind == "interval" else "a"
        raise SpecError((str(unknown[0]),), f"unknown key for {article} {kind} spec (allowed: {allowed})")
    zone = value.get("timezone", timezone)
    if kind == "interval":
        return _interval(value)
    if kind == "cron":
        return _cron(value["cron"], zone, ("cron",))
    if kind == "clocked":
        return ClockedSpec(parse_moment(value["clocked"], ("clocked",)))
    if kind == "calendar":
        return _calendar(value["calendar"], zone)
    return _solar(value)


def spec_from_json(data: object) -> Spec:
    """The spec stored in the database (its ``to_json()`` form); SpecError if it is damaged."""
    return parse_spec(data)


def _parse_text(text: str, timezone: str | None) -> Spec:
    if text.startswith("every"):
        rest = text[len("every") :].lstrip(": \t")
        return IntervalSpec(_every(rest, ()))
    if text.startswith("@") or len(text.split()) in (5, 6):
        return _cron(text, timezone, ())
    raise SpecError(
        (),
        f"{text!r} is not a schedule: use 'every:5m', a cron line like '0 9 * * *',"
        " or a mapping (every/cron/clocked/calendar/solar)",
    )


def _kind(value: Mapping[Any, Any]) -> str:
    kind = value.get("kind")
    present = [k for k, key in KIND_KEYS.items() if key in value]
    if kind is not None:
        if kind not in KIND_KEYS:
            raise SpecError(("kind",), f"{kind!r} is not a spec kind ({', '.join(KIND_KEYS)})")
        if KIND_KEYS[kind] not in value:
            raise SpecError((), f"a {kind} spec needs the key {KIND_KEYS[kind]!r}")
        return str(kind)
    if len(present) == 1:
        return present[0]
    if not present:
        keys = ", ".join(KIND_KEYS.values())
        raise SpecError((), f"a spec mapping needs one of {keys}; got {sorted(map(str, value))}")
    raise SpecError((), f"a spec has one kind; got {', '.join(KIND_KEYS[k] for k in present)}")


def _interval(value: Mapping[Any, Any]) -> IntervalSpec:
    every = _every(value["every"], ("every",))
    start = parse_moment(value["start_at"], ("start_at",)) if value.get("start_at") is not None else None
    end = parse_moment(value["end_at"], ("end_at",)) if value.get("end_at") is not None else None
    if start is not None and end is not None and end <= start:
        raise SpecError(("end_at",), f"{end.isoformat()} is not after start_at {start.isoformat()}")
    return IntervalSpec(every, start, end)


def _every(raw: object, path: tuple[str, ...]) -> float:
    seconds = parse_seconds(raw, path)
    if seconds < MIN_INTERVAL:
        raise SpecError(path, f"{raw!r} is too short: the shortest interval is {MIN_INTERVAL:g}s")
    return seconds


def parse_seconds(raw: object, path: tuple[str, ...], *, signed: bool = False) -> float:
    """Seconds from a number or a duration like ``5m`` (``-15m`` too when ``signed``)."""
    if isinstance(raw, bool):
        raise SpecError(path, f"must be a duration like 30s or 5m, got {raw!r}")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or (raw < 0 and not signed):
            raise SpecError(path, f"{raw!r} is not a usable number of seconds")
        if abs(raw) > MAX_DURATION:
            raise SpecError(path, f"{raw!r} is longer than the maximum, {MAX_DURATION_TEXT}")
        return float(raw)
    if not isinstance(raw, str):
        raise SpecError(path, f"must be a duration like 30s or 5m, got {_kind_of(raw)}")
    text, sign = raw.strip(), 1.0
    if signed and text[:1] in "+-":
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
    try:
        return sign * parse_duration(text, what="duration")
    except DurationTooLong:
        raise SpecError(path, f"{raw!r} is longer than the maximum, {MAX_DURATION_TEXT}") from None
    except ValueError:
        raise SpecError(path, f"{raw!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d)") from None


def parse_moment(raw: object, path: tuple[str, ...]) -> datetime:
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SpecError(path, f"{raw!r} is not an ISO 8601 time like 2026-03-29T02:30:00Z") from None
    if isinstance(raw, date) and not isinstance(raw, datetime):
        raise SpecError(path, f"{raw.isoformat()} is a date; give a time with a zone too")
    if not isinstance(raw, datetime):
        raise SpecError(path, f"must be an ISO 8601 time, got {_kind_of(raw)}")
    if raw.tzinfo is None or raw.utcoffset() is None:
        raise SpecError(path, f"{raw.isoformat()} has no time zone: add Z or an offset like +01:00")
    return raw.astimezone(UTC)


def check_timezone(name: object, path: tuple[str, ...] = ("timezone",)) -> str:
    """``name`` if it is an IANA time zone zoneinfo knows, else SpecError."""
    if not isinstance(name, str) or not name.strip():
        raise SpecError(path, f"must be an IANA time zone name like Europe/Berlin, got {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(path, f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)") from None
    return name


def _cron(raw: object, timezone: object, path: tuple[str, ...]) -> CronSpec:
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError(path, f"must be a cron line like '0 9 * * *', got {raw!r}")
    text = " ".join(raw.split())
    zone = check_timezone(timezone if timezone is not None else "UTC")
    fields = text.split()
    if text.lower() in _CRON_ALIASES:
        text = text.lower()
    elif len(fields) not in (5, 6):
        raise SpecError(path, f"{raw!r} has {len(fields)} fields; cron takes 5 (or 6, seconds first)")
    else:
        problem = invalid_field(text)
        if problem is not None:
            raise SpecError(path, f"{text!r}: {problem}")
        if not cron_valid(text):
            raise SpecError(path, f"{text!r} is not a valid cron expression")
    from croniter import CroniterBadDateError

    spec = CronSpec(text, zone)
    try:
        cron_next(text, zone, datetime(2000, 1, 1, tzinfo=UTC), day_or=True, every_hour=False)
    except CroniterBadDateError:
        raise SpecError(path, f"{raw!r} never matches a real date") from None
    return spec


def _calendar(raw: object, timezone: object) -> CalendarSpec:
    if not isinstance(raw, Mapping):
        raise SpecError(("calendar",), f"must be a mapping of {', '.join(CALENDAR_FIELDS)}")
    unknown = sorted(set(map(str, raw)) - set(CALENDAR_FIELDS))
    if unknown:
        raise SpecError(("calendar", unknown[0]), f"unknown key (allowed: {', '.join(CALENDAR_FIELDS)})")
    values = {key: _calendar_values(key, raw[key]) for key in CALENDAR_FIELDS if raw.get(key) is not None}
    zone = check_timezone(timezone if timezone is not None else "UTC")
    from croniter import CroniterBadDateError

    spec = CalendarSpec(**values, timezone=zone)
    try:
        cron_next(spec.to_cron(), zone, datetime(2000, 1, 1, tzinfo=UTC), day_or=False, every_hour=False)
    except CroniterBadDateError:
        raise SpecError(("calendar",), "never matches a real date") from None
    return spec


def _calendar_values(key: str, raw: object) -> tuple[int, ...]:
    low, high, names = CALENDAR_FIELDS[key]
    items = raw if isinstance(raw, list | tuple) else [raw]
    if not items:
        raise SpecError(("calendar", key), "must not be empty (leave it out to match anything)")
    out: list[int] = []
    for item in items:
        value = names.get(item.strip().lower()[:3]) if isinstance(item, str) and names else item
        if isinstance(item, str) and item.strip().isdigit():
            value = int(item)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            hint = f" or names ({', '.join(names)})" if names else ""
            raise SpecError(("calendar", key), f"{item!r} is not allowed: use {low}-{high}{hint}")
        out.append(value)
    return tuple(sorted(set(out)))


def _solar(value: Mapping[Any, Any]) -> SolarSpec:
    event = value["solar"]
    if event not in SOLAR_EVENTS:
        raise SpecError(("solar",), f"{event!r} is not a solar event ({', '.join(SOLAR_EVENTS)})")
    coords = []
    for key, limit in (("latitude", 90), ("longitude", 180)):
        raw = value.get(key)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not -limit <= raw <= limit:
            raise SpecError((key,), f"must be a number from -{limit} to {limit}, got {raw!r}")
        coords.append(float(raw))
    offset = parse_seconds(value.get("offset", 0), ("offset",), signed=True)
    return SolarSpec(str(event), coords[0], coords[1], offset)


def _kind_of(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
