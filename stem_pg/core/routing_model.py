"""The parts of a routing configuration (queues, broadcasts, routes) and the checks they share.

Each part validates itself on construction, so a part built in code is as
checked as one read from a file. Errors carry the key path they are about
(``PathError``) so that the parser (``routing_parse``) can place them in a
file. ``RoutingConfig``, which puts the parts together, lives in ``routing``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.storable import MAX_NAME_LENGTH, shown

KeyPath = tuple[str | int, ...]
#: Gives the 1-based line of a key path in the source file, or None if unknown.
Locator = Callable[[KeyPath], int | None]
Delivery = Literal["at-least-once", "at-most-once"]
TargetType = Literal["queue", "broadcast"]

DELIVERY_MODES: tuple[Delivery, ...] = ("at-least-once", "at-most-once")
TARGET_TYPES: tuple[TargetType, ...] = ("queue", "broadcast")
#: Upper bound of any priority, so that a range always means a small set of buckets.
MAX_PRIORITY = 255
DEFAULT_ALIAS = "default"


class PathError(RoutingConfigError):
    """A RoutingConfigError that knows the key path it is about.

    Parsers raise it relative to the value they read and callers prefix their
    own path (see ``routing_parse._under``), so nested code never carries the
    full path.
    """

    def __init__(self, path: KeyPath, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{_dotted(path)}: {reason}" if path else reason)


def _dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def located(exc: PathError, source: str | None, locate: Locator | None) -> RoutingConfigError:
    """Turn a path error into the user-facing ``file:line: key: reason`` form."""
    where = source or "<string>"
    line = _line_of(exc.path, locate)
    if line is not None:
        where += f":{line}"
    key = f" {_dotted(exc.path)}:" if exc.path else ""
    return RoutingConfigError(f"{where}:{key} {exc.reason}")


def _line_of(path: KeyPath, locate: Locator | None) -> int | None:
    # A missing key has no line of its own: report its closest present parent.
    if locate is None:
        return None
    for end in range(len(path), -1, -1):
        line = locate(path[:end])
        if line is not None:
            return line
    return None


def describe(value: object) -> str:
    """Name a value's kind for an error message ("a string ('x')", "a list")."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer")):
        if isinstance(value, kind):
            return f"{name} ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def known_names(names: Iterable[str]) -> str:
    """The sorted, quoted names for a "known: ..." hint; "none" when empty."""
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def check_priority(value: object, path: KeyPath = ()) -> int:
    """Return ``value`` if it is a usable priority (bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PathError(path, f"priority must be an integer, got {describe(value)}")
    if not 0 <= value <= MAX_PRIORITY:
        raise PathError(path, f"priority {value} is outside 0..{MAX_PRIORITY}")
    return value


def check_name(value: object, path: KeyPath, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise PathError(path, f"{what} must be a non-empty string, got {describe(value)}")
    if len(value) > MAX_NAME_LENGTH:
        raise PathError(
            path, f"{what} {shown(value)} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if "\x00" in value:
        raise PathError(path, f"{what} {shown(value)} holds a NUL character, which Postgres cannot store")


@dataclass(frozen=True)
class PriorityRange:
    """The priorities a queue stores; anything outside is clamped, never refused."""

    min: int = 0
    max: int = 9

    def __post_init__(self) -> None:
        check_priority(self.min, ("min",))
        check_priority(self.max, ("max",))
        if self.min > self.max:
            raise PathError((), f"min {self.min} is greater than max {self.max}")

    def clamp(self, priority: int) -> int:
        """Return ``priority`` moved into ``[min, max]``."""
        return max(self.min, min(self.max, priority))

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "max": self.max}


DEFAULT_PRIORITY_RANGE = PriorityRange()


@dataclass(frozen=True)
class QueueDefinition:
    """A named queue; exchange and routing_key are metadata kept from Stem."""

    name: str
    exchange: str | None = None
    routing_key: str | None = None
    priority_range: PriorityRange = DEFAULT_PRIORITY_RANGE

    def __post_init__(self) -> None:
        check_name(self.name, ("name",), "queue name")

    def to_dict(self) -> dict[str, object]:
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "priority_range": self.priority_range.to_dict(),
        }


@dataclass(frozen=True)
class BroadcastDefinition:
    """A fan-out channel; ``delivery`` and ``durability`` are consumer hints."""

    name: str
    delivery: Delivery = "at-least-once"
    durability: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, ("name",), "broadcast name")
        if self.delivery not in DELIVERY_MODES:
            reason = f"must be one of {known_names(DELIVERY_MODES)}, got {self.delivery!r}"
            raise PathError(("delivery",), reason)

    def to_dict(self) -> dict[str, object]:
        return {"delivery": self.delivery, "durability": self.durability}


@dataclass(frozen=True)
class DefaultQueue:
    """Where unrouted tasks go; ``alias`` lets code say "default" for ``queue``."""

    alias: str = DEFAULT_ALIAS
    queue: str = "default"
    fallbacks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))
        check_name(self.alias, ("alias",), "alias")
        check_name(self.queue, ("queue",), "queue name")
        for index, name in enumerate(self.fallbacks):
            check_name(name, ("fallbacks", index), "queue name")

    def to_dict(self) -> dict[str, object]:
        return {"alias": self.alias, "queue": self.queue, "fallbacks": list(self.fallbacks)}


@dataclass(frozen=True)
class RouteMatch:
    """A task-name glob (case-sensitive) and/or headers that must all be equal."""

    task: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        if self.task is not None:
            check_name(self.task, ("task",), "task pattern")
        if self.task is None and not self.headers:
            raise PathError((), "a match needs 'task' and/or 'headers'")

    def matches(self, task_name: str, headers: Mapping[str, str]) -> bool:
        """True if the task name fits the glob and every header is equal."""
        if self.task is not None and not fnmatch.fnmatchcase(task_name, self.task):
            return False
        return all(headers.get(key) == value for key, value in self.headers.items())

    def to_dict(self) -> dict[str, object]:
        return {"task": self.task, "headers": dict(self.headers)}


@dataclass(frozen=True)
class RouteTarget:
    """Where a matching task is sent: a queue or a broadcast channel."""

    type: TargetType
    name: str

    def __post_init__(self) -> None:
        if self.type not in TARGET_TYPES:
            reason = f"must be one of {known_names(TARGET_TYPES)}, got {self.type!r}"
            raise PathError(("type",), reason)
        check_name(self.name, ("name",), "target name")


@dataclass(frozen=True)
class RouteDefinition:
    """One routing rule; ``priority`` applies when the sender gives none."""

    match: RouteMatch
    target: RouteTarget
    priority: int | None = None

    def __post_init__(self) -> None:
        if self.priority is not None:
            check_priority(self.priority, ("priority",))

    def to_dict(self) -> dict[str, object]:
        target = {"type": self.target.type, "name": self.target.name}
        return {"match": self.match.to_dict(), "target": target, "priority": self.priority}
