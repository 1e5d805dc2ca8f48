"""Turns plain data (decoded YAML or JSON) into the parts of a routing configuration.

Strict by design: unknown keys (with a "did you mean"), wrong types and bad
values fail with the key path of the mistake, which ``RoutingConfig.from_mapping``
turns into a ``file:line: key: reason`` message. Standard library only.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar, cast

from stem_pg.core.routing_model import (
    DEFAULT_ALIAS,
    DEFAULT_PRIORITY_RANGE,
    TARGET_TYPES,
    BroadcastDefinition,
    DefaultQueue,
    Delivery,
    KeyPath,
    PathError,
    PriorityRange,
    QueueBinding,
    QueueDefinition,
    RouteDefinition,
    RouteMatch,
    RouteTarget,
    TargetType,
    camel_case,
    check_name,
    check_priority,
    describe,
)

_ROOT_KEYS = ("default_queue", "queues", "broadcasts", "routes")
_DEFAULT_QUEUE_KEYS = ("alias", "queue", "fallbacks")
_QUEUE_KEYS = (
    "exchange",
    "routing_key",
    "priority_range",
    "bindings",
    "meta",
    "rate_limit",
    "concurrency_limit",
    "limits_fail_open",
)
_BINDING_KEYS = ("routing_key", "headers", "weight")
_BROADCAST_KEYS = ("delivery", "durability", "meta")
_ROUTE_KEYS = ("match", "target", "priority_override", "priority", "options")
_MATCH_KEYS = ("task", "headers", "queue_override")
_TARGET_KEYS = ("type", "name")
_RANGE_KEYS = ("min", "max")

_T = TypeVar("_T")
Parts = tuple[
    DefaultQueue,
    dict[str, QueueDefinition],
    dict[str, BroadcastDefinition],
    tuple[RouteDefinition, ...],
]


class Fields(dict[str, object]):
    """A mapping's values by snake_case key, remembering how the file spelled each key
    (Stem accepts ``routingKey`` for ``routing_key``), so errors name the key as written."""

    def __init__(self) -> None:
        super().__init__()
        self.spelled: dict[str, str] = {}

    def key(self, name: str) -> str:
        """The key as the file wrote it (the snake_case name when absent)."""
        return self.spelled.get(name, name)


@contextmanager
def _under(*prefix: str | int) -> Iterator[None]:
    """Re-raise path errors from the block as errors below ``prefix``."""
    try:
        yield
    except PathError as exc:
        raise PathError(prefix + exc.path, exc.reason) from None


def parse_parts(data: object) -> Parts:
    """The default queue, queues, broadcasts and routes of a routing mapping.

    Raises PathError (a RoutingConfigError) with the key path of the first
    mistake; ``RoutingConfig.from_mapping`` turns it into ``file:line: key``.
    """
    fields = _fields(data, _ROOT_KEYS)
    with _under(fields.key("default_queue")):
        default_queue = _parse_default_queue(fields.get("default_queue"))
    with _under("queues"):
        queues = _map_of(fields.get("queues"), _parse_queue)
    with _under("broadcasts"):
        broadcasts = _map_of(fields.get("broadcasts"), _parse_broadcast)
    with _under("routes"):
        routes = _list_of(fields.get("routes"), _parse_route)
    return default_queue, queues, broadcasts, routes


def _fields(data: object, allowed: tuple[str, ...], *, nullable: bool = False) -> Fields:
    """Check that ``data`` is a mapping holding only ``allowed`` keys (snake_case, or Stem's
    camelCase spelling of them), and return its values by snake_case key."""
    fields = Fields()
    if data is None and nullable:
        return fields
    if not isinstance(data, Mapping):
        raise PathError((), f"expected a mapping with keys {', '.join(allowed)}, got {describe(data)}")
    spellings = {camel_case(name): name for name in allowed} | {name: name for name in allowed}
    for key, value in data.items():
        if not isinstance(key, str):
            raise PathError((), f"keys must be strings, got {describe(key)}")
        name = spellings.get(key)
        if name is None:
            close = difflib.get_close_matches(key, list(spellings), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PathError((key,), f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")
        if name in fields.spelled:
            raise PathError((key,), f"give either {fields.spelled[name]!r} or {key!r}, not both")
        fields[name], fields.spelled[name] = value, key
    return fields


def _map_of(data: object, parse: Callable[[str, object], _T]) -> dict[str, _T]:
    """Parse each entry of a name-keyed section, errors placed under its name."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise PathError((), f"expected a mapping of names, got {describe(data)}")
    parsed = {}
    for name, body in data.items():
        check_name(name, (), "name")
        with _under(name):
            parsed[name] = parse(name, body)
    return parsed


def _list_of(data: object, parse: Callable[[int, object], _T]) -> tuple[_T, ...]:
    """Parse each item of a list, errors placed under its index."""
    if data is None:
        return ()
    if not isinstance(data, list | tuple):
        raise PathError((), f"expected a list, got {describe(data)}")
    parsed = []
    for index, item in enumerate(data):
        with _under(index):
            parsed.append(parse(index, item))
    return tuple(parsed)


def _as_str(_: object, value: object) -> str:
    if not isinstance(value, str):
        raise PathError((), f"must be a string, got {describe(value)}")
    return value


def _opt_str(fields: Fields, key: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise PathError((fields.key(key),), f"must be a string, got {describe(value)}")
    return value


def _str_or(fields: Fields, key: str, default: str) -> str:
    # Only an absent or null key takes the default: "" must fail validation.
    value = _opt_str(fields, key)
    return default if value is None else value


def _meta(fields: Fields, key: str) -> dict[str, object]:
    """A free-form mapping (``meta``, ``options``); null or absent is empty."""
    value = fields.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PathError((fields.key(key),), f"expected a mapping, got {describe(value)}")
    return dict(value)


def _parse_default_queue(data: object) -> DefaultQueue:
    if data is None:
        return DefaultQueue()
    if isinstance(data, str):  # Stem's shorthand: `default_queue: primary`
        return DefaultQueue(queue=data)
    fields = _fields(data, _DEFAULT_QUEUE_KEYS)
    with _under("fallbacks"):
        fallbacks = _list_of(fields.get("fallbacks"), _as_str)
    alias = _str_or(fields, "alias", DEFAULT_ALIAS)
    # As in Stem, a missing queue is the queue the alias names.
    return DefaultQueue(alias, _str_or(fields, "queue", alias), fallbacks)


def _parse_queue(name: str, data: object) -> QueueDefinition:
    fields = _fields(data, _QUEUE_KEYS, nullable=True)
    priority_range = DEFAULT_PRIORITY_RANGE
    if fields.get("priority_range") is not None:
        with _under(fields.key("priority_range")):
            priority_range = _parse_range(fields["priority_range"])
    exchange, routing_key = _opt_str(fields, "exchange"), _opt_str(fields, "routing_key")
    with _under("bindings"):
        bindings = _list_of(fields.get("bindings"), _parse_binding)
    fail_open = fields.get("limits_fail_open")
    return QueueDefinition(
        name,
        exchange,
        routing_key,
        priority_range,
        bindings,
        _meta(fields, "meta"),
        # Checked by QueueDefinition, which names the key of a bad value.
        rate_limit=fields.get("rate_limit"),  # type: ignore[arg-type]
        concurrency_limit=fields.get("concurrency_limit"),  # type: ignore[arg-type]
        limits_fail_open=True if fail_open is None else fail_open,  # type: ignore[arg-type]
    )


def _parse_binding(_: int, data: object) -> QueueBinding:
    fields = _fields(data, _BINDING_KEYS)
    routing_key = _opt_str(fields, "routing_key")
    if routing_key is None:
        raise PathError((), "a binding needs a 'routing_key'")
    with _under("headers"):
        headers = _map_of(fields.get("headers"), _as_str)
    weight = fields.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int)):
        raise PathError(("weight",), f"must be an integer, got {describe(weight)}")
    return QueueBinding(routing_key, headers, weight)


def _parse_range(data: object) -> PriorityRange:
    """Accept Stem's two spellings: ``[min, max]`` and ``{min: .., max: ..}``."""
    if isinstance(data, list | tuple):
        if len(data) != 2:
            raise PathError((), f"[min, max] needs exactly 2 integers, got {len(data)} items")
        return PriorityRange(_priority(data[0], (0,)), _priority(data[1], (1,)))
    if isinstance(data, Mapping):
        fields = _fields(data, _RANGE_KEYS)
        low = _priority(fields.get("min", 0), ("min",))
        return PriorityRange(low, _priority(fields.get("max", 9), ("max",)))
    raise PathError((), f"expected [min, max] or {{min: .., max: ..}}, got {describe(data)}")


def _priority(value: object, path: KeyPath) -> int:
    # Stem reads a range bound written as text ("5") as its number.
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    return check_priority(value, path)


def _parse_broadcast(name: str, data: object) -> BroadcastDefinition:
    fields = _fields(data, _BROADCAST_KEYS, nullable=True)
    delivery = cast(Delivery, _str_or(fields, "delivery", "at-least-once"))
    return BroadcastDefinition(name, delivery, _opt_str(fields, "durability"), _meta(fields, "meta"))


def _parse_route(index: int, data: object) -> RouteDefinition:
    fields = _fields(data, _ROUTE_KEYS)
    for required in ("match", "target"):
        if fields.get(required) is None:
            raise PathError((), f"a route needs a {required!r} mapping")
    with _under("match"):
        match = _parse_match(fields["match"])
    with _under("target"):
        target = _parse_target(fields["target"])
    priority, override = (
        None if fields.get(key) is None else check_priority(fields[key], (fields.key(key),))
        for key in ("priority", "priority_override")
    )
    return RouteDefinition(match, target, priority, override, _meta(fields, "options"))


def _parse_match(data: object) -> RouteMatch:
    fields = _fields(data, _MATCH_KEYS)
    with _under("headers"):
        headers = _map_of(fields.get("headers"), _as_str)
    task = fields.get("task")
    if isinstance(task, list | tuple):
        with _under("task"):
            task = _list_of(task, _as_str)
    elif task is not None and not isinstance(task, str):
        raise PathError(("task",), f"must be a string or a list of strings, got {describe(task)}")
    override = _opt_str(fields, "queue_override")
    if override is not None:
        with _under(fields.key("queue_override")):
            check_name(override, (), "queue_override")
    return RouteMatch(task, headers, override)


def _parse_target(data: object) -> RouteTarget:
    fields = _fields(data, _TARGET_KEYS)
    name = _opt_str(fields, "name")
    if name is None:
        raise PathError((), "a target needs a 'name'")
    kind = _str_or(fields, "type", "queue")
    # Stem compares the type case-insensitively ("Queue" is a queue).
    return RouteTarget(cast(TargetType, kind.lower() if kind.lower() in TARGET_TYPES else kind), name)
