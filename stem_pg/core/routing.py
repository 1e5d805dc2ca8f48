"""Routing configuration: which queue or broadcast channel a task is sent to.

Pure data and rules (standard library only), so producers, workers and the CLI
share one validated model; YAML parsing lives in ``stem_pg.config.routing_file`` and
resolution (RoutingRegistry) in ``routing_registry``, re-exported here.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from stem_pg.core.errors import RoutingConfigError

if TYPE_CHECKING:
    import os

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


class _PathError(RoutingConfigError):
    """A RoutingConfigError that knows the key path it is about.

    Parsers raise it relative to the value they read and callers prefix their
    own path (see ``_under``), so nested code never carries the full path.
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


@contextmanager
def _under(*prefix: str | int) -> Iterator[None]:
    """Re-raise path errors from the block as errors below ``prefix``."""
    try:
        yield
    except _PathError as exc:
        raise _PathError(prefix + exc.path, exc.reason) from None


def _located(exc: _PathError, source: str | None, locate: Locator | None) -> RoutingConfigError:
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


def _kind(value: object) -> str:
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


def _known(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in sorted(names)) or "none"


def _check_priority(value: object, path: KeyPath = ()) -> int:
    """Return ``value`` if it is a usable priority (bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _PathError(path, f"priority must be an integer, got {_kind(value)}")
    if not 0 <= value <= MAX_PRIORITY:
        raise _PathError(path, f"priority {value} is outside 0..{MAX_PRIORITY}")
    return value


def _check_name(value: object, path: KeyPath, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _PathError(path, f"{what} must be a non-empty string, got {_kind(value)}")


@dataclass(frozen=True)
class PriorityRange:
    """The priorities a queue stores; anything outside is clamped, never refused."""

    min: int = 0
    max: int = 9

    def __post_init__(self) -> None:
        _check_priority(self.min, ("min",))
        _check_priority(self.max, ("max",))
        if self.min > self.max:
            raise _PathError((), f"min {self.min} is greater than max {self.max}")

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
        _check_name(self.name, ("name",), "queue name")

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
        _check_name(self.name, ("name",), "broadcast name")
        if self.delivery not in DELIVERY_MODES:
            reason = f"must be one of {_known(DELIVERY_MODES)}, got {self.delivery!r}"
            raise _PathError(("delivery",), reason)

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
        _check_name(self.alias, ("alias",), "alias")
        _check_name(self.queue, ("queue",), "queue name")
        for index, name in enumerate(self.fallbacks):
            _check_name(name, ("fallbacks", index), "queue name")

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
            _check_name(self.task, ("task",), "task pattern")
        if self.task is None and not self.headers:
            raise _PathError((), "a match needs 'task' and/or 'headers'")

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
            reason = f"must be one of {_known(TARGET_TYPES)}, got {self.type!r}"
            raise _PathError(("type",), reason)
        _check_name(self.name, ("name",), "target name")


@dataclass(frozen=True)
class RouteDefinition:
    """One routing rule; ``priority`` applies when the sender gives none."""

    match: RouteMatch
    target: RouteTarget
    priority: int | None = None

    def __post_init__(self) -> None:
        if self.priority is not None:
            _check_priority(self.priority, ("priority",))

    def to_dict(self) -> dict[str, object]:
        target = {"type": self.target.type, "name": self.target.name}
        return {"match": self.match.to_dict(), "target": target, "priority": self.priority}


@dataclass(frozen=True)
class RoutingConfig:
    """A validated routing file: queues, broadcasts, routes and the default queue.

    Without ``queues`` the topology is open: any queue name is accepted (the
    legacy single-queue behaviour). Raises RoutingConfigError when invalid.
    """

    default_queue: DefaultQueue = DefaultQueue()
    queues: Mapping[str, QueueDefinition] = field(default_factory=dict)
    broadcasts: Mapping[str, BroadcastDefinition] = field(default_factory=dict)
    routes: tuple[RouteDefinition, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "queues", MappingProxyType(dict(self.queues)))
        object.__setattr__(self, "broadcasts", MappingProxyType(dict(self.broadcasts)))
        object.__setattr__(self, "routes", tuple(self.routes))
        try:
            _check_references(self.default_queue, self.queues, self.broadcasts, self.routes)
        except _PathError as exc:
            raise _located(exc, self.source or "RoutingConfig", None) from None

    @classmethod
    def legacy(cls, default_queue: str = "default") -> RoutingConfig:
        """The configuration used when no routing file is given: one open queue."""
        return cls(default_queue=DefaultQueue(queue=default_queue))

    @classmethod
    def from_mapping(
        cls, data: object, *, source: str | None = None, locate: Locator | None = None
    ) -> RoutingConfig:
        """Build from plain dicts and lists (decoded YAML or JSON) and validate.

        ``locate`` maps a key path to its line so that errors can name it.
        Raises RoutingConfigError naming the source, line and key path.
        """
        try:
            default_queue, queues, broadcasts, routes = _parse_root(data)
            _check_references(default_queue, queues, broadcasts, routes)
        except _PathError as exc:
            raise _located(exc, source, locate) from None
        return cls(default_queue, queues, broadcasts, routes, source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str | None = None) -> RoutingConfig:
        """Parse YAML text (safe loading only); an empty document is legacy."""
        from stem_pg.config import routing_file  # lazy: keeps yaml out of the core

        return routing_file.load_routing_yaml(text, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RoutingConfig:
        """Read and parse a routing file; raises RoutingConfigError if missing."""
        from stem_pg.config import routing_file  # lazy: keeps yaml out of the core

        return routing_file.load_routing_file(path)

    def to_dict(self) -> dict[str, object]:
        """A JSON-able view that ``from_mapping`` accepts back unchanged."""
        return {
            "default_queue": self.default_queue.to_dict(),
            "queues": {name: queue.to_dict() for name, queue in self.queues.items()},
            "broadcasts": {name: item.to_dict() for name, item in self.broadcasts.items()},
            "routes": [route.to_dict() for route in self.routes],
        }


def _check_references(
    default_queue: DefaultQueue,
    queues: Mapping[str, QueueDefinition],
    broadcasts: Mapping[str, BroadcastDefinition],
    routes: tuple[RouteDefinition, ...],
) -> None:
    """Check that every name used is defined, so typos fail at load time."""
    for section, defined in (("queues", queues), ("broadcasts", broadcasts)):
        for key, definition in defined.items():
            if definition.name != key:
                raise _PathError((section, key), f"holds a definition named {definition.name!r}")
    if queues:
        _require_queue(default_queue.queue, queues, ("default_queue", "queue"))
        for index, name in enumerate(default_queue.fallbacks):
            _require_queue(name, queues, ("default_queue", "fallbacks", index))
        if default_queue.alias in queues and default_queue.alias != default_queue.queue:
            reason = f"alias {default_queue.alias!r} is also the name of another queue"
            raise _PathError(("default_queue", "alias"), reason)
    for index, route in enumerate(routes):
        path: KeyPath = ("routes", index, "target", "name")
        name = route.target.name
        if route.target.type == "broadcast" and name not in broadcasts:
            raise _PathError(path, f"broadcast {name!r} is not defined; known: {_known(broadcasts)}")
        if route.target.type == "queue" and name != default_queue.alias:
            _require_queue(name, queues, path)


def _require_queue(name: str, queues: Mapping[str, QueueDefinition], path: KeyPath) -> None:
    if queues and name not in queues:
        raise _PathError(path, f"queue {name!r} is not defined in queues; known: {_known(queues)}")


# --- parsing plain data -----------------------------------------------------

_ROOT_KEYS = ("default_queue", "queues", "broadcasts", "routes")
_DEFAULT_QUEUE_KEYS = ("alias", "queue", "fallbacks")
_QUEUE_KEYS = ("exchange", "routing_key", "priority_range")
_BROADCAST_KEYS = ("delivery", "durability")
_ROUTE_KEYS = ("match", "target", "priority")
_MATCH_KEYS = ("task", "headers")
_TARGET_KEYS = ("type", "name")
_RANGE_KEYS = ("min", "max")

_T = TypeVar("_T")
_Parts = tuple[
    DefaultQueue,
    dict[str, QueueDefinition],
    dict[str, BroadcastDefinition],
    tuple[RouteDefinition, ...],
]


def _parse_root(data: object) -> _Parts:
    fields = _fields(data, _ROOT_KEYS)
    with _under("default_queue"):
        default_queue = _parse_default_queue(fields.get("default_queue"))
    with _under("queues"):
        queues = _map_of(fields.get("queues"), _parse_queue)
    with _under("broadcasts"):
        broadcasts = _map_of(fields.get("broadcasts"), _parse_broadcast)
    with _under("routes"):
        routes = _list_of(fields.get("routes"), _parse_route)
    return default_queue, queues, broadcasts, routes


def _fields(data: object, allowed: tuple[str, ...], *, nullable: bool = False) -> Mapping[str, object]:
    """Check that ``data`` is a mapping holding only ``allowed`` keys."""
    if data is None and nullable:
        return {}
    if not isinstance(data, Mapping):
        raise _PathError((), f"expected a mapping with keys {', '.join(allowed)}, got {_kind(data)}")
    for key in data:
        if not isinstance(key, str):
            raise _PathError((), f"keys must be strings, got {_kind(key)}")
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _PathError((key,), f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")
    return cast("Mapping[str, object]", data)


def _map_of(data: object, parse: Callable[[str, object], _T]) -> dict[str, _T]:
    """Parse each entry of a name-keyed section, errors placed under its name."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise _PathError((), f"expected a mapping of names, got {_kind(data)}")
    parsed = {}
    for name, body in data.items():
        _check_name(name, (), "name")
        with _under(name):
            parsed[name] = parse(name, body)
    return parsed


def _list_of(data: object, parse: Callable[[int, object], _T]) -> tuple[_T, ...]:
    """Parse each item of a list, errors placed under its index."""
    if data is None:
        return ()
    if not isinstance(data, list | tuple):
        raise _PathError((), f"expected a list, got {_kind(data)}")
    parsed = []
    for index, item in enumerate(data):
        with _under(index):
            parsed.append(parse(index, item))
    return tuple(parsed)


def _as_str(_: object, value: object) -> str:
    if not isinstance(value, str):
        raise _PathError((), f"must be a string, got {_kind(value)}")
    return value


def _opt_str(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise _PathError((key,), f"must be a string, got {_kind(value)}")
    return value


def _str_or(fields: Mapping[str, object], key: str, default: str) -> str:
    # Only an absent or null key takes the default: "" must fail validation.
    value = _opt_str(fields, key)
    return default if value is None else value


def _parse_default_queue(data: object) -> DefaultQueue:
    if data is None:
        return DefaultQueue()
    if isinstance(data, str):  # Stem's shorthand: `default_queue: primary`
        return DefaultQueue(queue=data)
    fields = _fields(data, _DEFAULT_QUEUE_KEYS)
    with _under("fallbacks"):
        fallbacks = _list_of(fields.get("fallbacks"), _as_str)
    alias = _str_or(fields, "alias", DEFAULT_ALIAS)
    return DefaultQueue(alias, _str_or(fields, "queue", "default"), fallbacks)


def _parse_queue(name: str, data: object) -> QueueDefinition:
    fields = _fields(data, _QUEUE_KEYS, nullable=True)
    priority_range = DEFAULT_PRIORITY_RANGE
    if fields.get("priority_range") is not None:
        with _under("priority_range"):
            priority_range = _parse_range(fields["priority_range"])
    exchange, routing_key = _opt_str(fields, "exchange"), _opt_str(fields, "routing_key")
    return QueueDefinition(name, exchange, routing_key, priority_range)


def _parse_range(data: object) -> PriorityRange:
    """Accept Stem's two spellings: ``[min, max]`` and ``{min: .., max: ..}``."""
    if isinstance(data, list | tuple):
        if len(data) != 2:
            raise _PathError((), f"[min, max] needs exactly 2 integers, got {len(data)} items")
        return PriorityRange(_check_priority(data[0], (0,)), _check_priority(data[1], (1,)))
    if isinstance(data, Mapping):
        fields = _fields(data, _RANGE_KEYS)
        low = _check_priority(fields.get("min", 0), ("min",))
        return PriorityRange(low, _check_priority(fields.get("max", 9), ("max",)))
    raise _PathError((), f"expected [min, max] or {{min: .., max: ..}}, got {_kind(data)}")


def _parse_broadcast(name: str, data: object) -> BroadcastDefinition:
    fields = _fields(data, _BROADCAST_KEYS, nullable=True)
    delivery = cast(Delivery, _str_or(fields, "delivery", "at-least-once"))
    return BroadcastDefinition(name, delivery, _opt_str(fields, "durability"))


def _parse_route(index: int, data: object) -> RouteDefinition:
    fields = _fields(data, _ROUTE_KEYS)
    for required in ("match", "target"):
        if fields.get(required) is None:
            raise _PathError((), f"a route needs a {required!r} mapping")
    with _under("match"):
        match_fields = _fields(fields["match"], _MATCH_KEYS)
        with _under("headers"):
            headers = _map_of(match_fields.get("headers"), _as_str)
        match = RouteMatch(_opt_str(match_fields, "task"), headers)
    with _under("target"):
        target_fields = _fields(fields["target"], _TARGET_KEYS)
        name = _opt_str(target_fields, "name")
        if name is None:
            raise _PathError((), "a target needs a 'name'")
        kind = cast(TargetType, _str_or(target_fields, "type", "queue"))
        target = RouteTarget(kind, name)
    priority = fields.get("priority")
    return RouteDefinition(
        match, target, None if priority is None else _check_priority(priority, ("priority",))
    )


# --- registry re-exports ----------------------------------------------------
# The registry lives in routing_registry, which imports this module; a lazy
# lookup (rather than an import at the bottom) works whichever is imported first.

if TYPE_CHECKING:
    from stem_pg.core.routing_registry import ResolvedRoute as ResolvedRoute
    from stem_pg.core.routing_registry import RoutingRegistry as RoutingRegistry
    from stem_pg.core.routing_registry import RoutingSubscription as RoutingSubscription

_REGISTRY_NAMES = frozenset({"ResolvedRoute", "RoutingRegistry", "RoutingSubscription"})


def __getattr__(name: str) -> object:
    if name in _REGISTRY_NAMES:
        from stem_pg.core import routing_registry

        return getattr(routing_registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
