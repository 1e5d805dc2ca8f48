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
from stem_pg.core.limits import LimitError, Limits, declared_limits
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
#: The keys Stem also accepts in camelCase (``defaultQueue``, ``routingKey``, ...).
SNAKE_KEYS = frozenset(
    {"default_queue", "routing_key", "priority_range", "priority_override", "queue_override"}
)


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
    camel = tuple(camel_case(part) if isinstance(part, str) and part in SNAKE_KEYS else part for part in path)
    for end in range(len(path), -1, -1):
        for spelled in (path[:end], camel[:end]):
            line = locate(spelled)
            if line is not None:
                return line
    return None


def camel_case(key: str) -> str:
    """Stem's camelCase spelling of a snake_case key (``routing_key`` -> ``routingKey``)."""
    first, *rest = key.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


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


def frozen_meta(value: object, path: KeyPath = ()) -> Mapping[str, object]:
    """A read-only copy of a ``meta`` mapping; its values must be plain JSON data."""
    if not isinstance(value, Mapping):
        raise PathError(path, f"expected a mapping, got {describe(value)}")
    return MappingProxyType({key: _frozen(item, (*path, key)) for key, item in _string_keyed(value, path)})


def _string_keyed(value: Mapping[object, object], path: KeyPath) -> Iterable[tuple[str, object]]:
    for key, item in value.items():
        if not isinstance(key, str):
            raise PathError(path, f"keys must be strings, got {describe(key)}")
        yield key, item


def _frozen(value: object, path: KeyPath) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return frozen_meta(value, path)
    if isinstance(value, list | tuple):
        return tuple(_frozen(item, (*path, index)) for index, item in enumerate(value))
    raise PathError(
        path, f"must be plain data (text, numbers, booleans, lists, mappings), got {describe(value)}"
    )


def thawed(value: object) -> object:
    """A JSON-able copy of frozen meta (mappings become dicts, tuples lists)."""
    if isinstance(value, Mapping):
        return {key: thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thawed(item) for item in value]
    return value


def _frozen_headers(headers: Mapping[str, str], path: KeyPath) -> Mapping[str, str]:
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PathError((*path, str(key)), f"header values must be strings, got {describe(value)}")
    return MappingProxyType(dict(headers))


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
class QueueBinding:
    """A routing key (and headers) bound to a queue: broker metadata kept from Stem, not used
    to route (Stem's brokers do not use it either)."""

    routing_key: str
    headers: Mapping[str, str] = field(default_factory=dict)
    weight: int | None = None

    def __post_init__(self) -> None:
        check_name(self.routing_key, ("routing_key",), "routing_key")
        object.__setattr__(self, "headers", _frozen_headers(self.headers, ("headers",)))
        if self.weight is not None and (isinstance(self.weight, bool) or not isinstance(self.weight, int)):
            raise PathError(("weight",), f"must be an integer, got {describe(self.weight)}")

    def to_dict(self) -> dict[str, object]:
        return {"routing_key": self.routing_key, "headers": dict(self.headers), "weight": self.weight}


@dataclass(frozen=True)
class QueueDefinition:
    """A named queue; exchange, routing_key and bindings are metadata kept from Stem, and
    ``meta`` is shown to the handlers of its jobs (``ctx.routing.meta``)."""

    name: str
    exchange: str | None = None
    routing_key: str | None = None
    priority_range: PriorityRange = DEFAULT_PRIORITY_RANGE
    bindings: tuple[QueueBinding, ...] = ()
    meta: Mapping[str, object] = field(default_factory=dict)
    #: Starts of this queue's jobs across the namespace ("100/s"), and how many may run at
    #: once; enforced by the workers' claim (stem_pg.core.limits).
    rate_limit: str | None = None
    concurrency_limit: int | None = None
    limits_fail_open: bool = True

    @property
    def limits(self) -> Limits:
        return declared_limits(
            f"queue:{self.name}",
            rate_limit=self.rate_limit,
            concurrency_limit=self.concurrency_limit,
            limits_fail_open=self.limits_fail_open,
        )

    def __post_init__(self) -> None:
        check_name(self.name, ("name",), "queue name")
        try:
            self.limits  # noqa: B018 (checked when the file is read)
        except LimitError as exc:
            raise PathError((), str(exc)) from None
        object.__setattr__(self, "bindings", tuple(self.bindings))
        object.__setattr__(self, "meta", frozen_meta(self.meta, ("meta",)))

    def to_dict(self) -> dict[str, object]:
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "priority_range": self.priority_range.to_dict(),
            "bindings": [binding.to_dict() for binding in self.bindings],
            "meta": thawed(self.meta),
        } | {
            name: value
            for name, value in (
                ("rate_limit", self.rate_limit),
                ("concurrency_limit", self.concurrency_limit),
                ("limits_fail_open", None if self.limits_fail_open else False),
            )
            if value is not None
        }


@dataclass(frozen=True)
class BroadcastDefinition:
    """A fan-out channel; ``delivery`` and ``durability`` are consumer hints, ``meta`` is shown
    to the handlers of its messages (``ctx.routing.meta``)."""

    name: str
    delivery: Delivery = "at-least-once"
    durability: str | None = None
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, ("name",), "broadcast name")
        object.__setattr__(self, "meta", frozen_meta(self.meta, ("meta",)))
        if self.delivery not in DELIVERY_MODES:
            reason = f"must be one of {known_names(DELIVERY_MODES)}, got {self.delivery!r}"
            raise PathError(("delivery",), reason)

    def to_dict(self) -> dict[str, object]:
        return {"delivery": self.delivery, "durability": self.durability, "meta": thawed(self.meta)}


@dataclass(frozen=True)
class DefaultQueue:
    """Where unrouted tasks go; ``alias`` lets code say "default" for ``queue``.

    ``fallbacks`` are advisory, as in Stem (its registry reports them and nothing consumes
    them): they are checked and shown, and a worker consumes them only if subscribed.
    """

    alias: str = DEFAULT_ALIAS
    queue: str = "default"
    fallbacks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))
        check_name(self.alias, ("alias",), "alias")
        check_name(self.queue, ("queue",), "queue name")
        for index, name in enumerate(self.fallbacks):
            check_name(name, ("fallbacks", index), "queue name")

    def is_alias(self, name: str) -> bool:
        """True if ``name`` is an alias of the default queue: ``alias``, or "default", which
        Stem always keeps as one (a queue really named so is that queue, not the alias)."""
        return name in (self.alias, DEFAULT_ALIAS)

    def to_dict(self) -> dict[str, object]:
        return {"alias": self.alias, "queue": self.queue, "fallbacks": list(self.fallbacks)}


@dataclass(frozen=True)
class RouteMatch:
    """Task-name globs (case-sensitive; a list matches if any does), headers that must all be
    equal, and ``queue_override``: the rule then only applies to tasks sent to that queue."""

    task: str | tuple[str, ...] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    queue_override: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _frozen_headers(self.headers, ("headers",)))
        if isinstance(self.task, list | tuple):
            object.__setattr__(self, "task", tuple(self.task))
            if not self.task:
                raise PathError(("task",), "a list of task patterns needs at least one pattern")
        for index, pattern in enumerate(self.patterns):
            check_name(
                pattern, ("task", index) if isinstance(self.task, tuple) else ("task",), "task pattern"
            )
        if self.queue_override is not None:
            check_name(self.queue_override, ("queue_override",), "queue_override")
        if self.task is None and not self.headers and self.queue_override is None:
            raise PathError((), "a match needs 'task' and/or 'headers' (or 'queue_override')")

    @property
    def patterns(self) -> tuple[str, ...]:
        """The task globs, one or several; empty when the match is on headers only."""
        if self.task is None:
            return ()
        return (self.task,) if isinstance(self.task, str) else self.task

    def matches(self, task_name: str, headers: Mapping[str, str]) -> bool:
        """True if the task name fits one of the globs and every header is equal.

        ``queue_override`` is not checked here: the registry resolves queue aliases.
        """
        patterns = self.patterns
        if patterns and not any(fnmatch.fnmatchcase(task_name, pattern) for pattern in patterns):
            return False
        return all(headers.get(key) == value for key, value in self.headers.items())

    def to_dict(self) -> dict[str, object]:
        task = list(self.task) if isinstance(self.task, tuple) else self.task
        return {"task": task, "headers": dict(self.headers), "queue_override": self.queue_override}


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
    """One routing rule.

    ``priority_override`` (Stem's key) wins over the sender's priority; ``priority``
    (stem_pg's own) applies only when the sender gives none. Either is clamped into the
    target queue's range. ``options`` is free metadata kept from Stem.
    """

    match: RouteMatch
    target: RouteTarget
    priority: int | None = None
    priority_override: int | None = None
    options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.priority is not None:
            check_priority(self.priority, ("priority",))
        if self.priority_override is not None:
            check_priority(self.priority_override, ("priority_override",))
        object.__setattr__(self, "options", frozen_meta(self.options, ("options",)))

    def to_dict(self) -> dict[str, object]:
        target = {"type": self.target.type, "name": self.target.name}
        return {
            "match": self.match.to_dict(),
            "target": target,
            "priority": self.priority,
            "priority_override": self.priority_override,
            "options": thawed(self.options),
        }
