"""Planning: an enqueue request becomes a validated job or broadcast message before any SQL runs.

The Planner holds what planning needs (the task registry, the routing and the
default retry count) and nothing that talks to the database, so every error in
a request surfaces here, before a row is written.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from stem_pg.core.control import is_durable
from stem_pg.core.envelope import (
    JobSpec,
    check_moment,
    check_name,
    check_seconds,
    check_task_id,
    encode_input,
    encode_kwargs,
    new_task_id,
    split_expires,
    unique_key,
)
from stem_pg.core.errors import ConfigError, TaskError, UnknownTaskWarning
from stem_pg.core.routing_registry import ResolvedRoute, RoutingRegistry
from stem_pg.core.signing import SIGNATURE_HEADER, Signing, with_signature
from stem_pg.core.storable import DEFAULT_MAX_PAYLOAD_BYTES, MAX_NAME_LENGTH
from stem_pg.core.tasks import TaskOptions, TaskRegistry
from stem_pg.core.trace_hooks import PublishTracing
from stem_pg.core.workflows import CANVAS_HEADER

Expires = datetime | timedelta | float | None

#: Distinct (task, queue, priority, headers) placements remembered; more are computed each time.
PLACEMENT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class EnqueueRequest:
    """One job for ``enqueue_many``; the fields mirror ``enqueue``'s arguments."""

    task: str
    kwargs: Mapping[str, Any] | None = None
    task_id: str | None = None
    countdown: float | timedelta | None = None
    eta: datetime | None = None
    expires: Expires = None
    priority: int | None = None
    queue: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    #: ``debounce="5s"`` with a ``key``: the enqueue replaces the key's waiting job
    #: (stem_pg.client.debounce).
    debounce: float | timedelta | str | None = None
    key: str | None = None

    @property
    def debounced(self) -> bool:
        return self.debounce is not None or self.key is not None


@dataclass(frozen=True)
class Placement:
    """Where and how a task's jobs go: routing and task options resolved once."""

    queue: str
    priority: int
    max_retries: int
    visibility_timeout: int | None
    acks_late: bool
    unique: bool = False
    unique_for: float | None = None


@dataclass(frozen=True)
class BroadcastSpec:
    """One broadcast message, validated and ready to publish."""

    task_id: str
    channel: str
    task: str
    args: str
    headers: str
    delivery: str
    durable: bool
    max_retries: int
    eta: datetime | None
    countdown: float | None
    expires_at: datetime | None
    expires_in: float | None


class Planner:
    """Validates requests and resolves their routes; placements are cached per distinct input
    because a bulk enqueue plans thousands of requests for a handful of tasks."""

    def __init__(
        self,
        registry: TaskRegistry,
        routing: RoutingRegistry,
        *,
        default_max_retries: int,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        signing: Signing | None = None,
    ) -> None:
        self._registry = registry
        self._routing = routing
        self.default_max_retries = default_max_retries
        #: The longest JSON a job's kwargs or headers may have (see stem_pg.core.storable).
        self.max_payload_bytes = check_max_payload_bytes(max_payload_bytes)
        #: With an active key, every planned job and message is signed (stem_pg.core.signing).
        self.signing = signing
        #: Set by ``stem_pg.tracing.instrument``: each planned job gets a producer span.
        self.tracing: PublishTracing | None = None
        self._placements: dict[tuple[object, ...], Placement] = {}

    @property
    def registry(self) -> TaskRegistry:
        return self._registry

    @registry.setter
    def registry(self, registry: TaskRegistry) -> None:
        self._registry = registry
        self.forget()

    @property
    def routing(self) -> RoutingRegistry:
        return self._routing

    @routing.setter
    def routing(self, routing: RoutingRegistry) -> None:
        self._routing = routing
        self.forget()

    def forget(self) -> None:
        """Drop the cached placements (a task was registered: its options may differ)."""
        self._placements.clear()

    # -- queue jobs ---------------------------------------------------------------------

    def plan(self, request: EnqueueRequest) -> JobSpec:
        """Validate a request and resolve its route; raises TaskError / RoutingConfigError."""
        name = request.task
        if type(name) is not str or len(name) > MAX_NAME_LENGTH:  # before it shows in a message
            check_name(name, what="task name")
        if request.priority is not None and (
            isinstance(request.priority, bool) or not isinstance(request.priority, int)
        ):
            raise TaskError(f"{name}: priority must be an integer, got {request.priority!r}")
        given = request.headers
        headers = tuple(sorted((str(k), str(v)) for k, v in given.items())) if given else ()
        place = self.placement(name, request.queue, request.priority, headers)
        if request.eta is not None and request.countdown is not None:
            raise TaskError(f"{name}: give either eta or countdown, not both")
        expires_at, expires_in = (None, None) if request.expires is None else split_expires(request.expires)
        definition = self._registry.get(name)
        if definition is not None and definition.models and request.kwargs:
            request = replace(request, kwargs=definition.models.dump(name, request.kwargs))
        args = encode_kwargs(name, request.kwargs, max_bytes=self.max_payload_bytes)
        if definition is not None:  # a canvas link gets the previous result later: partial
            definition.check_kwargs(request.kwargs, partial=CANVAS_HEADER in request.headers)
        key = unique_key(name, place.queue, request.kwargs) if place.unique else None
        task_id = check_task_id(request.task_id) if request.task_id is not None else new_task_id()
        if self.tracing is not None:  # after routing: trace headers never choose a route
            request = replace(
                request, headers=self.tracing.stamp(task_id, name, place.queue, request.headers)
            )
        return JobSpec(
            id=task_id,
            task=name,
            queue=place.queue,
            priority=place.priority,
            args=args,
            headers=self._headers(task_id, name, request) if request.headers or self.signing else "{}",
            max_retries=place.max_retries,
            eta=check_moment(request.eta, what="eta"),
            countdown=check_seconds(request.countdown, what="countdown"),
            expires_at=expires_at,
            expires_in=expires_in,
            visibility_timeout=place.visibility_timeout,
            acks_late=place.acks_late,
            id_given=request.task_id is not None,
            unique_key=key,
            unique_for=place.unique_for,
        )

    def plan_batch(
        self, requests: Iterable[EnqueueRequest], *, skip: Collection[int] = ()
    ) -> Iterator[JobSpec]:
        """``plan`` each request but those at the positions in ``skip``, lazily (COPY streams
        them); an error names the request's position (``enqueue_many item 3: ...``)."""
        for index, request in enumerate(requests):
            if index in skip:
                continue
            try:
                spec = self.plan(request)
            except (TaskError, ConfigError) as exc:
                raise at_item(index, exc) from None
            yield spec

    def placement(
        self, name: str, queue: str | None, priority: int | None, headers: tuple[tuple[str, str], ...]
    ) -> Placement:
        """Where and how a task goes, from routing and task options; cached per distinct input."""
        key = (name, queue, priority, headers)
        place = self._placements.get(key)
        if place is not None:
            return place
        check_name(name, what="task name")
        if queue is not None:
            check_name(queue, what=f"{name}: queue")
        for header, _ in headers:
            check_name(header, what=f"{name}: header key")
        options = self._options(name)
        if (close := self._registry.close_match(name)) is not None:
            warnings.warn(
                UnknownTaskWarning(f"task {name!r} is not registered here; did you mean {close!r}?"),
                stacklevel=2,
            )
        route = self._routing.resolve(
            name,
            queue=queue or options.queue,
            priority=priority if priority is not None else options.priority,
            headers=dict(headers),
        )
        if route.kind != "queue":
            raise TaskError(
                f"{name}: routed to broadcast channel {route.name!r}; plan() builds queue jobs only"
                " (app.enqueue and app.broadcast publish broadcast messages)"
            )
        vt = options.visibility_timeout
        place = Placement(
            queue=route.name,
            priority=route.priority,
            max_retries=options.retry_policy(self.default_max_retries).max_retries,
            visibility_timeout=None if vt is None else max(1, round(vt)),
            acks_late=options.acks_late,
            unique=options.unique,
            unique_for=options.unique_for if isinstance(options.unique_for, float) else None,
        )
        # Headers are part of the key: big ones (refused later, or one-offs) are not remembered.
        if len(self._placements) < PLACEMENT_CACHE_SIZE and sum(len(v) for _, v in headers) <= 1024:
            self._placements[key] = place
        return place

    def task_options(self) -> dict[str, dict[str, Any]]:
        """Each registered task's enqueue options as this app resolves them (JSON-ready): what
        a worker records, so ``stem tasks enqueue`` without ``--app`` can apply them."""
        described = {}
        for definition in self._registry:
            options = definition.options
            route = self._routing.resolve(definition.name, queue=options.queue, priority=options.priority)
            queue = route.kind == "queue"  # a broadcast route: the enqueuer's routing decides
            described[definition.name] = {
                "queue": route.name if queue else None,
                "priority": route.priority if queue else None,
                "max_retries": options.retry_policy(self.default_max_retries).max_retries,
                "visibility_timeout": options.visibility_timeout,
                "acks_late": options.acks_late,
                "unique": options.unique,
                "unique_for": options.unique_for,
            }
        return described

    # -- broadcast messages ---------------------------------------------------------------

    def broadcast_route(self, request: EnqueueRequest) -> ResolvedRoute | None:
        """The broadcast route of an enqueue request, or None when it goes to a queue."""
        if not self._routing.config.broadcasts:
            return None
        queue = request.queue or self._options(request.task).queue
        if not isinstance(request.task, str) or (queue is not None and not self._routing.has_queue_overrides):
            return None
        headers = {str(k): str(v) for k, v in request.headers.items()}
        route = self._routing.resolve(request.task, queue=queue, headers=headers)
        return route if route.kind == "broadcast" else None

    def plan_broadcast(self, request: EnqueueRequest, channel: str) -> BroadcastSpec:
        """Validate one message for ``channel``; raises TaskError / RoutingConfigError."""
        name = check_name(request.task, what="task name")
        for header in request.headers:
            check_name(str(header), what=f"{name}: header key")
        definition = self._routing.broadcast(channel)
        options = self._options(name)
        if request.eta is not None and request.countdown is not None:
            raise TaskError(f"{name}: give either eta or countdown, not both")
        expires_at, expires_in = split_expires(request.expires)
        task_id = check_task_id(request.task_id) if request.task_id is not None else new_task_id()
        args = encode_kwargs(name, request.kwargs, max_bytes=self.max_payload_bytes)
        return BroadcastSpec(
            task_id=task_id,
            channel=definition.name,
            task=name,
            args=args,
            headers=self._headers(task_id, name, request) if request.headers or self.signing else "{}",
            delivery=definition.delivery,
            durable=is_durable(definition.durability),
            max_retries=options.retry_policy(self.default_max_retries).max_retries,
            eta=check_moment(request.eta, what="eta"),
            countdown=check_seconds(request.countdown, what="countdown"),
            expires_at=expires_at,
            expires_in=expires_in,
        )

    def plan_routed(
        self, requests: Sequence[EnqueueRequest], *, numbered: bool = True
    ) -> dict[int, BroadcastSpec]:
        """The broadcast messages among enqueue requests, by position (empty without broadcast
        routes); with ``numbered``, an error names the request's position."""
        planned = {}
        for index, request in enumerate(requests):
            try:
                route = self.broadcast_route(request)
                if route is not None:
                    planned[index] = self.plan_broadcast(request, route.name)
            except (TaskError, ConfigError) as exc:
                if not numbered:
                    raise
                raise at_item(index, exc) from None
        return planned

    def _headers(self, task_id: str, name: str, request: EnqueueRequest) -> str:
        """The request's headers as JSON, signed when there is an active key (after the
        arguments were checked: only JSON is signed)."""
        headers = request.headers
        text = (
            encode_input(dict(headers), what=f"{name}: headers", max_bytes=self.max_payload_bytes)
            if headers
            else "{}"
        )
        signer = self._signer
        if signer is None:
            return text
        if SIGNATURE_HEADER in headers:  # signed before (a copied request): sign again
            return self.sign(task_id, name, request.kwargs, headers)
        return with_signature(text, signer.signature(task_id, name, _plain(request.kwargs), headers))

    def sign(
        self,
        task_id: str,
        name: str,
        kwargs: Mapping[str, Any] | None,
        headers: Mapping[str, Any],
        free: str | None = None,
    ) -> str:
        """``headers`` with a fresh signature of the job, as JSON (unsigned without an active
        key); ``free`` as in ``stem_pg.core.signing.signed_message``."""
        signer = self._signer
        signed = (
            dict(headers)
            if signer is None
            else signer.signed_headers(task_id, name, _plain(kwargs), headers, free)
        )
        return encode_input(signed, what=f"{name}: headers", max_bytes=self.max_payload_bytes)

    @property
    def _signer(self) -> Signing | None:
        """The signing keys when one of them signs (an active key), else None."""
        return self.signing if self.signing is not None and self.signing.can_sign else None

    def _options(self, name: str) -> TaskOptions:
        definition = self._registry.get(name)
        return definition.options if definition else TaskOptions()


def check_max_payload_bytes(value: object) -> int:
    """``value`` if it is a usable payload limit (a whole number of bytes >= 1024), else TaskError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise TaskError(f"max_payload_bytes must be a whole number of bytes >= 1024, got {value!r}")
    return value


def at_item(index: int, exc: TaskError | ConfigError) -> TaskError | ConfigError:
    """``exc`` again, its message led by the batch position it was raised for."""
    return type(exc)(f"enqueue_many item {index}: {exc}")


def _plain(kwargs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A request's kwargs as the signature covers them: a dict (none: an empty one)."""
    return {} if kwargs is None else kwargs if type(kwargs) is dict else dict(kwargs)
