"""Schedule entries: validating them (errors name the file, entry and key) and the misfire policy.

Pure: the YAML reader (``stem_pg.config.schedule_file``) hands plain data and a line
lookup to ``parse_entries``; the database rows come back through
``entry_from_row``. Nothing here touches a connection.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stem_pg.core.durations import MAX_DURATION, MAX_DURATION_TEXT
from stem_pg.core.envelope import check_name as check_text_name
from stem_pg.core.errors import ScheduleError, TaskError
from stem_pg.core.schedule_spec_parse import (
    check_timezone,
    parse_moment,
    parse_seconds,
    parse_spec,
    spec_from_json,
)
from stem_pg.core.schedule_specs import IntervalSpec, Spec, SpecError
from stem_pg.core.storable import DEFAULT_MAX_PAYLOAD_BYTES, MAX_DEPTH, check_text, encode_storable

MISFIRE_POLICIES = ("run_once", "skip")
DEFAULT_MISFIRE_GRACE = 60.0
MAX_NAME_LENGTH = 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]*\Z")
ENTRY_KEYS = (
    "task",
    "spec",
    "args",
    "kwargs",
    "queue",
    "priority",
    "jitter",
    "enabled",
    "expires_at",
    "misfire",
    "misfire_grace",
    "timezone",
    "description",
)
_ALIASES = {"expires": "expires_at", "expire_at": "expires_at", "schedule": "spec"}

KeyPath = tuple[str | int, ...]
Locate = Callable[[KeyPath], int | None]


@dataclass(frozen=True)
class ScheduleEntry:
    """One schedule: what to enqueue (task, kwargs, queue, priority) and when (spec)."""

    name: str
    task: str
    spec: Spec
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    jitter: float = 0.0
    enabled: bool = True
    expires_at: datetime | None = None
    misfire: str = "run_once"
    misfire_grace: float = DEFAULT_MISFIRE_GRACE
    description: str | None = None

    def definition(self) -> dict[str, Any]:
        """The stored form of everything a user defines (compared by ``schedule apply``)."""
        return {
            "task": self.task,
            "spec": self.spec.to_json(),
            "kwargs": dict(self.kwargs),
            "queue": self.queue,
            "priority": self.priority,
            "jitter": self.jitter,
            "enabled": self.enabled,
            "expires_at": self.expires_at,
            "misfire": self.misfire,
            "misfire_grace": self.misfire_grace,
            "description": self.description,
        }


@dataclass(frozen=True)
class FireDecision:
    """What beat does with a due entry: fire (or skip) ``fire_time``, then wait for ``next_run_at``."""

    fire: bool
    fire_time: datetime
    next_run_at: datetime | None
    missed: bool


def decide(
    spec: Spec, *, due: datetime, now: datetime, misfire: str, grace: float = DEFAULT_MISFIRE_GRACE
) -> FireDecision:
    """The misfire policy for an entry whose ``next_run_at`` (``due``) has come.

    Fire times are never bursts: however many slots passed while no beat ran,
    at most one job is enqueued. ``run_once`` fires the due slot once, late;
    ``skip`` fires it only when it is at most ``grace`` seconds late. Either way
    the next slot is the first one after ``now``.
    """
    following = spec.next_after(due)
    missed = following is not None and following <= now
    next_run_at = spec.next_after(now) if missed else following
    late = (now - due).total_seconds()
    fire = misfire == "run_once" or late <= grace
    return FireDecision(fire=fire, fire_time=due, next_run_at=next_run_at, missed=missed or not fire)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{name!r} is not a schedule name: use letters, digits and _ . : @ -"
            f" (at most {MAX_NAME_LENGTH} characters, starting with a letter or digit)"
        )
    return name


def parse_entries(data: object, *, source: str, locate: Locate | None = None) -> list[ScheduleEntry]:
    """Every entry of a schedule file's data (a mapping of name -> entry).

    Raises one ScheduleError listing every problem, each line naming
    ``source`` (with the line when ``locate`` knows it), the entry and the key.
    """
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ScheduleError(f"{source}: a schedule file is a mapping of entry names to entries")
    entries, problems = [], []
    for name, body in data.items():
        try:
            entries.append(_entry(name, body))
        except _EntryError as exc:
            problems.append(_format(source, locate, exc))
    if problems:
        raise ScheduleError("\n".join(problems))
    return entries


def parse_entry(name: object, body: object, *, source: str | None = None) -> ScheduleEntry:
    """One entry; ScheduleError (naming ``source`` if given, the entry and the key) if invalid."""
    try:
        return _entry(name, body)
    except _EntryError as exc:
        raise ScheduleError(_format(source, None, exc)) from None


def check_entry(entry: ScheduleEntry) -> ScheduleEntry:
    """``entry`` if it could have come from a file (an entry made in code skips the parsing):
    else ScheduleError naming the entry and the key. ``schedule apply`` and ``--dry-run`` both
    run it, so a dry run refuses what the real apply would."""
    try:
        check_name(entry.name)
        _text(entry.name, "task", entry.task)
        if entry.queue is not None:
            _text(entry.name, "queue", entry.queue)
        durations: dict[KeyPath, float] = {("jitter",): entry.jitter, ("misfire_grace",): entry.misfire_grace}
        if isinstance(entry.spec, IntervalSpec):
            durations["spec", "every"] = entry.spec.every
        for path, value in durations.items():
            if not 0 <= value <= MAX_DURATION:
                raise _EntryError(entry.name, path, f"{value!r} is not between 0 and {MAX_DURATION_TEXT}")
        _storable_kwargs(entry.name, entry.kwargs)
    except _EntryError as exc:
        raise ScheduleError(_format(None, None, exc)) from None
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    return entry


def entry_from_row(row: Mapping[str, Any]) -> ScheduleEntry:
    """An entry from its stored columns; ScheduleError if the spec was damaged by hand."""
    try:
        spec = spec_from_json(row["spec"])
    except SpecError as exc:
        raise ScheduleError(f"entry {row['name']!r}: stored spec: {exc}") from None
    return ScheduleEntry(
        name=row["name"],
        task=row["task"],
        spec=spec,
        kwargs=row["kwargs"] or {},
        queue=row["queue"],
        priority=row["priority"],
        jitter=row["jitter"],
        enabled=row["enabled"],
        expires_at=row["expires_at"],
        misfire=row["misfire"],
        misfire_grace=row["misfire_grace"],
        description=row["description"],
    )


# -- validation ----------------------------------------------------------------------


class _EntryError(Exception):
    def __init__(self, name: object, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.name, self.path, self.message = name, path, message


def _format(source: str | None, locate: Locate | None, exc: _EntryError) -> str:
    line = None
    if locate is not None:
        for depth in range(len(exc.path) + 1, 0, -1):
            line = locate((str(exc.name), *exc.path[: depth - 1]))
            if line is not None:
                break
    where = f"{source}:{line}: " if source and line else f"{source}: " if source else ""
    key = ".".join(str(p) for p in exc.path)
    return f"{where}entry {str(exc.name)!r}: {key + ': ' if key else ''}{exc.message}"


def _entry(name: object, body: object) -> ScheduleEntry:
    try:
        check_name(name)
    except ValueError as exc:
        raise _EntryError(name, (), str(exc)) from None
    if not isinstance(body, Mapping):
        raise _EntryError(name, (), f"must be a mapping with task and spec, got {type(body).__name__}")
    data = {_ALIASES.get(str(k), str(k)): v for k, v in body.items()}
    for key in data:
        if key not in ENTRY_KEYS:
            raise _EntryError(name, (key,), f"unknown key (allowed: {', '.join(ENTRY_KEYS)})")
    for key in ("task", "spec"):
        if data.get(key) is None:
            raise _EntryError(name, (key,), "is required")
    if not isinstance(data["task"], str) or not data["task"].strip():
        raise _EntryError(name, ("task",), f"must be a task name, got {data['task']!r}")
    _text(name, "task", data["task"].strip())
    timezone = data.get("timezone")
    try:
        if timezone is not None:
            check_timezone(timezone, ())
        spec = parse_spec(data["spec"], timezone=timezone)
    except SpecError as exc:
        path: KeyPath = ("spec", *exc.path) if timezone is None or exc.path else ("timezone",)
        raise _EntryError(name, path, exc.message) from None
    return ScheduleEntry(
        name=str(name),
        task=data["task"].strip(),
        spec=spec,
        kwargs=_kwargs(name, data),
        queue=_queue(name, data),
        priority=_priority(name, data.get("priority")),
        jitter=_duration(name, data, "jitter", 0.0),
        enabled=_flag(name, data.get("enabled", True)),
        expires_at=_expiry(name, data.get("expires_at")),
        misfire=_misfire(name, data.get("misfire", "run_once")),
        misfire_grace=_duration(name, data, "misfire_grace", DEFAULT_MISFIRE_GRACE),
        description=_optional_text(name, data, "description"),
    )


def _kwargs(name: object, data: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in ("args", "kwargs"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            why = "stem_pg tasks take keyword arguments" if isinstance(value, Sequence) else "must be"
            raise _EntryError(name, (key,), f"{why}: give a mapping of argument names to values")
        for arg in value:
            if arg in merged:
                raise _EntryError(name, (key, arg), "is given in both args and kwargs")
        merged.update(value)
    try:
        plain: dict[str, Any] = json.loads(json.dumps(merged, allow_nan=False, default=_json_moment))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _EntryError(name, ("kwargs",), f"must be JSON data: {exc}") from None
    _storable_kwargs(name, plain)
    return plain


def _storable_kwargs(name: object, kwargs: Mapping[str, Any]) -> None:
    """A NUL character, data nested too deeply or too big: refused now, not at each fire."""
    try:
        encode_storable(dict(kwargs), what="kwargs", max_bytes=DEFAULT_MAX_PAYLOAD_BYTES, max_depth=MAX_DEPTH)
    except TaskError as exc:
        raise _EntryError(name, ("kwargs",), str(exc).removeprefix("kwargs ")) from None


def _text(name: object, key: str, value: str) -> str:
    """A task or queue name a text column stores, of at most MAX_NAME_LENGTH characters."""
    try:
        return check_text_name(value, what="name")
    except TaskError as exc:
        raise _EntryError(name, (key,), str(exc).removeprefix("name ")) from None


def _json_moment(value: object) -> str:
    if isinstance(value, datetime):  # YAML turns unquoted times into datetimes
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _optional_text(name: object, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _EntryError(name, (key,), f"must be non-empty text, got {value!r}")
    try:
        return check_text(value.strip(), what="text")
    except TaskError as exc:
        raise _EntryError(name, (key,), str(exc).removeprefix("text ")) from None


def _queue(name: object, data: Mapping[str, Any]) -> str | None:
    queue = _optional_text(name, data, "queue")
    return None if queue is None else _text(name, "queue", queue)


def _priority(name: object, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -32768 <= value <= 32767:
        raise _EntryError(name, ("priority",), f"must be a whole number, got {value!r}")
    return value


def _duration(name: object, data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    try:
        seconds = parse_seconds(value, ())
    except SpecError as exc:
        raise _EntryError(name, (key,), exc.message) from None
    if not math.isfinite(seconds):
        raise _EntryError(name, (key,), f"{value!r} is not a usable duration")
    return seconds


def _flag(name: object, value: object) -> bool:
    if not isinstance(value, bool):
        raise _EntryError(name, ("enabled",), f"must be true or false, got {value!r}")
    return value


def _expiry(name: object, value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value, ())
    except SpecError as exc:
        raise _EntryError(name, ("expires_at",), exc.message) from None


def _misfire(name: object, value: object) -> str:
    if value not in MISFIRE_POLICIES:
        raise _EntryError(name, ("misfire",), f"{value!r} is not a policy ({' or '.join(MISFIRE_POLICIES)})")
    return str(value)
