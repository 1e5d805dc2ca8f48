"""Routing configuration: which queue or broadcast channel a task is sent to.

Pure data and rules (standard library only), so producers, workers and the CLI
share one validated model. ``RoutingConfig`` puts together the parts defined in
``routing_model`` (re-exported here, so this stays the one import path) and
checks that every name they use is defined; ``routing_parse`` reads plain data,
``stem_pg.config.routing_file`` reads YAML, and ``routing_registry`` answers
where a task goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from stem_pg.core.routing_model import (
    DEFAULT_ALIAS,
    DEFAULT_PRIORITY_RANGE,
    DELIVERY_MODES,
    MAX_PRIORITY,
    TARGET_TYPES,
    BroadcastDefinition,
    DefaultQueue,
    Delivery,
    KeyPath,
    Locator,
    PathError,
    PriorityRange,
    QueueBinding,
    QueueDefinition,
    RouteDefinition,
    RouteMatch,
    RouteTarget,
    TargetType,
    known_names,
    located,
)
from stem_pg.core.routing_parse import parse_parts

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_PRIORITY_RANGE",
    "DELIVERY_MODES",
    "MAX_PRIORITY",
    "TARGET_TYPES",
    "BroadcastDefinition",
    "DefaultQueue",
    "Delivery",
    "KeyPath",
    "Locator",
    "PriorityRange",
    "QueueBinding",
    "QueueDefinition",
    "RouteDefinition",
    "RouteMatch",
    "RouteTarget",
    "RoutingConfig",
    "TargetType",
]


@dataclass(frozen=True)
class RoutingConfig:
    """A validated routing file: queues, broadcasts, routes and the default queue.

    Without ``queues`` the topology is open: any queue name is accepted (the
    legacy single-queue behaviour). Raises RoutingConfigError when invalid.
    """

    default_queue: DefaultQueue = field(default_factory=DefaultQueue)
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
        except PathError as exc:
            raise located(exc, self.source or "RoutingConfig", None) from None

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
            default_queue, queues, broadcasts, routes = parse_parts(data)
            _check_references(default_queue, queues, broadcasts, routes)
        except PathError as exc:
            raise located(exc, source, locate) from None
        return cls(default_queue, queues, broadcasts, routes, source)

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
                raise PathError((section, key), f"holds a definition named {definition.name!r}")
    if queues:
        _require_queue(default_queue.queue, queues, ("default_queue", "queue"))
        for index, name in enumerate(default_queue.fallbacks):
            _require_queue(name, queues, ("default_queue", "fallbacks", index))
        if default_queue.alias in queues and default_queue.alias != default_queue.queue:
            reason = f"alias {default_queue.alias!r} is also the name of another queue"
            raise PathError(("default_queue", "alias"), reason)
    for index, route in enumerate(routes):
        path: KeyPath = ("routes", index, "target", "name")
        name = route.target.name
        if route.target.type == "broadcast" and name not in broadcasts:
            raise PathError(path, f"broadcast {name!r} is not defined; known: {known_names(broadcasts)}")
        if route.target.type == "queue" and not _is_alias(name, default_queue, queues):
            _require_queue(name, queues, path)
        override = route.match.queue_override
        if override is not None and not _is_alias(override, default_queue, queues):
            _require_queue(override, queues, ("routes", index, "match", "queue_override"))


def _is_alias(name: str, default_queue: DefaultQueue, queues: Mapping[str, QueueDefinition]) -> bool:
    return default_queue.is_alias(name) and name not in queues


def _require_queue(name: str, queues: Mapping[str, QueueDefinition], path: KeyPath) -> None:
    if queues and name not in queues:
        raise PathError(path, f"queue {name!r} is not defined in queues; known: {known_names(queues)}")
