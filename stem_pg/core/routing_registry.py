"""Routing decisions: where a task goes and which queues a worker may consume.

Pure standard library like the model it reads (``stem_pg.core.routing``); build
one from a file with ``stem_pg.config.routing_file``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from stem_pg.core.errors import RoutingConfigError
from stem_pg.core.routing import RoutingConfig
from stem_pg.core.routing_model import (
    DEFAULT_PRIORITY_RANGE,
    BroadcastDefinition,
    PathError,
    QueueDefinition,
    RouteDefinition,
    TargetType,
    known_names,
    thawed,
)

#: How a worker names the queue of a broadcast message it runs (``broadcast:<channel>``).
BROADCAST_QUEUE_PREFIX = "broadcast:"


@dataclass(frozen=True)
class RoutingInfo:
    """Where a running job was routed, as its handler sees it (``ctx.routing``).

    ``queue`` is None for a broadcast message, ``broadcast`` its channel (None for a
    job); ``meta`` is the ``meta`` of that queue or channel in the routing file (empty
    when it defines none), as plain JSON data: a copy, so changing it changes nothing.
    """

    queue: str | None
    priority: int
    broadcast: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedRoute:
    """Where one task goes: ``route`` is the rule that matched, None for the default."""

    kind: TargetType
    name: str
    priority: int
    route: RouteDefinition | None = None


class RoutingRegistry:
    """Answers routing questions (where does this task go, what may a worker consume)."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config if config is not None else RoutingConfig.legacy()

    @property
    def default_queue(self) -> str:
        return self.config.default_queue.queue

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return self.config.default_queue.fallbacks

    def queue_names(self) -> tuple[str, ...]:
        """The queues a worker may consume: the defined ones, else the default queue."""
        if self.config.queues:
            return tuple(self.config.queues)
        return tuple(dict.fromkeys((self.default_queue, *self.fallbacks)))

    def queue(self, name: str) -> QueueDefinition:
        """Look a queue up by name or alias.

        Raises RoutingConfigError if the config defines queues and ``name`` is
        neither one of them nor the default alias; without defined queues any
        name is accepted with the default priority range.
        """
        queues = self.config.queues
        if self.config.default_queue.is_alias(name) and name not in queues:
            name = self.default_queue
        if name in queues:
            return queues[name]
        if queues:
            alias = self.config.default_queue.alias
            raise self._error(
                f"unknown queue {name!r}{_did_you_mean(name, queues)}; known: {known_names(queues)}"
                f" (alias {alias!r})"
            )
        try:
            return QueueDefinition(name)
        except PathError as exc:
            raise self._error(exc.reason) from None

    def broadcast(self, name: str) -> BroadcastDefinition:
        """Look a broadcast channel up; raises RoutingConfigError if undefined."""
        try:
            return self.config.broadcasts[name]
        except KeyError:
            known = known_names(self.config.broadcasts)
            close = _did_you_mean(name, self.config.broadcasts)
            raise self._error(f"unknown broadcast {name!r}{close}; known: {known}") from None

    @property
    def has_queue_overrides(self) -> bool:
        """True if some route applies only to tasks sent to a named queue (``queue_override``)."""
        return any(route.match.queue_override is not None for route in self.config.routes)

    def match(
        self, task_name: str, headers: Mapping[str, str] | None = None, *, queue: str | None = None
    ) -> RouteDefinition | None:
        """The first route that fits the task name, headers and requested queue, if any.

        Without ``queue`` only routes without ``queue_override`` apply; with one, only
        routes whose ``queue_override`` names that queue (aliases resolved), as in Stem.
        """
        requested = None if queue is None else self.queue(queue).name
        for route in self.config.routes:
            override = route.match.queue_override
            if override is None:
                if requested is not None:
                    continue
            elif requested is None or self.queue(override).name != requested:
                continue
            if route.match.matches(task_name, headers or {}):
                return route
        return None

    def resolve(
        self,
        task_name: str,
        *,
        queue: str | None = None,
        priority: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ResolvedRoute:
        """Decide where ``task_name`` goes and with which priority.

        An explicit ``queue`` wins over routes (pass None unless the sender chose
        one), except a route whose ``queue_override`` names that queue. The
        priority is the route's ``priority_override``, else the hint, else the
        route's ``priority``, else 0, clamped into the target queue's range;
        broadcasts use the default range 0..9.
        Raises RoutingConfigError for an unknown explicit queue.
        """
        route = self.match(task_name, headers, queue=queue)
        if route is not None:
            if route.priority_override is not None:
                priority = route.priority_override
            elif priority is None:
                priority = route.priority
        if route is not None and route.target.type == "broadcast":
            clamped = DEFAULT_PRIORITY_RANGE.clamp(priority or 0)
            return ResolvedRoute("broadcast", route.target.name, clamped, route)
        target = queue if route is None else route.target.name
        definition = self.queue(target if target is not None else self.default_queue)
        clamped = definition.priority_range.clamp(priority or 0)
        return ResolvedRoute("queue", definition.name, clamped, route)

    def info(self, queue: str, priority: int) -> RoutingInfo:
        """What a handler is told of where its job came from (``ctx.routing``); never raises.

        ``queue`` is the job's queue, or ``broadcast:<channel>`` for a broadcast message.
        """
        if queue.startswith(BROADCAST_QUEUE_PREFIX):
            channel = queue.removeprefix(BROADCAST_QUEUE_PREFIX)
            broadcast = self.config.broadcasts.get(channel)
            return RoutingInfo(None, priority, channel, _copy(broadcast.meta if broadcast else None))
        definition = self.config.queues.get(queue)
        return RoutingInfo(queue, priority, None, _copy(definition.meta if definition else None))

    def _error(self, reason: str) -> RoutingConfigError:
        prefix = f"{self.config.source}: " if self.config.source else ""
        return RoutingConfigError(prefix + reason)


@dataclass(frozen=True)
class RoutingSubscription:
    """The queues and broadcast channels one worker consumes."""

    queues: tuple[str, ...]
    broadcasts: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, registry: RoutingRegistry, queues: Iterable[str] = (), broadcasts: Iterable[str] = ()
    ) -> RoutingSubscription:
        """Resolve aliases and check names; no queues means the default queue.

        Raises RoutingConfigError for an unknown queue or broadcast channel.
        """
        names = _as_names(queues) or (registry.default_queue,)
        resolved = (registry.queue(name).name for name in names)
        channels = (registry.broadcast(name).name for name in _as_names(broadcasts))
        return cls(tuple(dict.fromkeys(resolved)), tuple(dict.fromkeys(channels)))


def _copy(meta: Mapping[str, object] | None) -> dict[str, Any]:
    return cast("dict[str, Any]", thawed(meta)) if meta else {}


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_names(names: Iterable[str]) -> tuple[str, ...]:
    # A bare string is an Iterable[str] too; iterating it would yield letters.
    return (names,) if isinstance(names, str) else tuple(names)
