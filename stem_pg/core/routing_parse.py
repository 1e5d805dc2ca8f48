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
    BroadcastDefinition,
    DefaultQueue,
    Delivery,
    PathError,
    PriorityRange,
    QueueDefinition,
    RouteDefinition,
    RouteMatch,
    RouteTarget,
    TargetType,
    check_name,
    check_priority,
    describe,
)

_ROOT_KEYS = ("default_queue", "queues", "broadcasts", "routes")
_DEFAULT_QUEUE_KEYS = ("alias", "queue", "fallbacks")
_QUEUE_KEYS = ("exchange", "routing_key", "priority_range")
_BROADCAST_KEYS = ("delivery", "durability")
_ROUTE_KEYS = ("match", "target", "priority")
_MATCH_KEYS = ("task", "headers")
_TARGET_KEYS = ("type", "name")
_RANGE_KEYS = ("min", "max")

_T = TypeVar("_T")
Parts = tuple[
    DefaultQueue,
    dict[str, QueueDefinition],
    dict[str, BroadcastDefinition],
    tuple[RouteDefinition, ...],
]


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
        raise PathError((), f"expected a mapping with keys {', '.join(allowed)}, got {describe(data)}")
    for key in data:
        if not isinstance(key, str):
            raise PathError((), f"keys must be strings, got {describe(key)}")
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PathError((key,), f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")
    return cast("Mapping[str, object]", data)


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


def _opt_str(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is not None and not isinstance(value, str):
        raise PathError((key,), f"must be a string, got {describe(value)}")
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
            raise PathError((), f"[min, max] needs exactly 2 integers, got {len(data)} items")
        return PriorityRange(check_priority(data[0], (0,)), check_priority(data[1], (1,)))
    if isinstance(data, Mapping):
        fields = _fields(data, _RANGE_KEYS)
        low = check_priority(fields.get("min", 0), ("min",))
        return PriorityRange(low, check_priority(fields.get("max", 9), ("max",)))
    raise PathError((), f"expected [min, max] or {{min: .., max: ..}}, got {describe(data)}")


def _parse_broadcast(name: str, data: object) -> BroadcastDefinition:
    fields = _fields(data, _BROADCAST_KEYS, nullable=True)
    delivery = cast(Delivery, _str_or(fields, "delivery", "at-least-once"))
    return BroadcastDefinition(name, delivery, _opt_str(fields, "durability"))


def _parse_route(index: int, data: object) -> RouteDefinition:
    fields = _fields(data, _ROUTE_KEYS)
    for required in ("match", "target"):
        if fields.get(required) is None:
            raise PathError((), f"a route needs a {required!r} mapping")
    with _under("match"):
        match_fields = _fields(fields["match"], _MATCH_KEYS)
        with _under("headers"):
            headers = _map_of(match_fields.get("headers"), _as_str)
        match = RouteMatch(_opt_str(match_fields, "task"), headers)
    with _under("target"):
        target_fields = _fields(fields["target"], _TARGET_KEYS)
        name = _opt_str(target_fields, "name")
        if name is None:
            raise PathError((), "a target needs a 'name'")
        kind = cast(TargetType, _str_or(target_fields, "type", "queue"))
        target = RouteTarget(kind, name)
    priority = fields.get("priority")
    return RouteDefinition(
        match, target, None if priority is None else check_priority(priority, ("priority",))
    )
