"""The spans of one app: a producer span per planned job (its context into the job's headers)
and the consumer middleware that runs each attempt inside a span of the job's trace (and
hands the trace on to a workflow's resume job, through ``trace_hooks.HANDED_ON``).

Names and attributes follow the OpenTelemetry messaging conventions: ``send <queue>``
(PRODUCER; for a batch a CLIENT ``send`` span and a PRODUCER ``create <queue>`` per job)
and ``process <queue>`` (CONSUMER); ``messaging.system`` is ``stem_pg``,
the messaging system the application talks to (the database under it shows in the
database client's own spans, ``db.system``); stem's own attributes sit under
``messaging.stem_pg.``, as Kafka's and RabbitMQ's do under theirs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stem_pg.core.signals import CallNext, TaskInfo
from stem_pg.core.trace_hooks import HANDED_ON, MAX_TRACE_LINKS, TRACE_LINKS_HEADER
from stem_pg.core.workflows import CANVAS_HEADER, WORKFLOW_HEADER

SYSTEM = "stem_pg"
_W3C = TraceContextTextMapPropagator()


@dataclass
class _Batch:
    """The ``sending`` span being written, and the queues of the jobs planned in it."""

    span: Span
    single: bool
    stamped: bool = False
    queues: set[str] = field(default_factory=set)


_BATCH: ContextVar[_Batch | None] = ContextVar("stem_pg_tracing_batch", default=None)


class JobTracing:
    """The ``PublishTracing`` of ``stem_pg.core.trace_hooks`` and the consumer middleware of
    one app; ``namespace`` reads the app's (it may change until the app connects)."""

    def __init__(self, tracer: Tracer, namespace: Callable[[], str]) -> None:
        self.tracer = tracer
        self.namespace = namespace

    # -- producer ------------------------------------------------------------------------

    @contextmanager
    def sending(self, count: int) -> Iterator[Span]:
        """The span around writing ``count`` jobs, current while they are planned and inserted:
        for one job its PRODUCER ``send <queue>`` span (whose context the job carries), for
        more a CLIENT ``send`` span of the batch, each job getting a PRODUCER ``create`` span."""
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.stem_pg.namespace": self.namespace(),
        }
        if count > 1:
            attributes["messaging.batch.message_count"] = count
        kind = SpanKind.PRODUCER if count == 1 else SpanKind.CLIENT
        with self.tracer.start_as_current_span("send", kind=kind, attributes=attributes) as span:
            batch = _Batch(span, single=count == 1)
            token = _BATCH.set(batch)
            try:
                yield span
            finally:
                _BATCH.reset(token)
                if len(batch.queues) == 1:  # the conventions name a span after its one destination
                    [queue] = batch.queues
                    span.update_name(f"send {queue}")
                    span.set_attribute("messaging.destination.name", queue)

    def stamp(self, task_id: str, task: str, queue: str, headers: Mapping[str, Any]) -> Mapping[str, Any]:
        """``headers`` with the trace context (``traceparent``, and what else the globally
        configured propagator writes) of the job's producer span: the ``sending`` span of a
        single job, else a span of its own (``create`` in a batch, ``send`` outside one)."""
        attributes = self._common(queue, task_id, task)
        conversation = _conversation(headers)
        if conversation is not None:
            attributes["messaging.message.conversation_id"] = conversation
        stamped = dict(headers)
        batch = _BATCH.get()
        if batch is not None:
            batch.queues.add(queue)
            if batch.single and not batch.stamped:
                batch.stamped = True
                batch.span.set_attributes(attributes)
                propagate.inject(stamped)  # the single job's span is the current one
                return stamped
        operation = "create" if batch is not None else "send"
        attributes["messaging.operation.type"] = attributes["messaging.operation.name"] = operation
        span = self.tracer.start_span(f"{operation} {queue}", kind=SpanKind.PRODUCER, attributes=attributes)
        try:
            propagate.inject(stamped, context=trace.set_span_in_context(span))
        finally:
            span.end()
        return stamped

    def links(self, headers: Sequence[str]) -> Mapping[str, Any]:
        """``{stem-trace-links: [traceparent, ...]}`` of the jobs whose JSON headers are given."""
        found = []
        for text in headers[:MAX_TRACE_LINKS]:
            context = _span_context(propagate.extract(json.loads(text)))
            if context is not None:
                found.append(_traceparent(context))
        return {TRACE_LINKS_HEADER: found} if found else {}

    # -- consumer ------------------------------------------------------------------------

    async def process(self, ctx: TaskInfo, call_next: CallNext) -> Any:
        """The middleware: run the attempt in a CONSUMER span whose parent is the job's
        producer span (and linked to it, as the conventions ask), linked to the jobs it follows."""
        headers = ctx.headers
        parent = propagate.extract(headers) if headers else Context()
        links = []
        producer = _span_context(parent)
        if producer is not None:
            links.append(Link(producer))
        followed = headers.get(TRACE_LINKS_HEADER) if headers else None
        if isinstance(followed, list):
            for value in followed[:MAX_TRACE_LINKS]:
                context = (
                    _span_context(_W3C.extract({"traceparent": value})) if isinstance(value, str) else None
                )
                if context is not None:
                    links.append(Link(context))
        attributes = {
            **self._common(ctx.queue, ctx.task_id, ctx.task),
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.client.id": ctx.worker_id,
            "messaging.stem_pg.attempt": ctx.attempt,
        }
        conversation = _conversation(headers)
        if conversation is not None:
            attributes["messaging.message.conversation_id"] = conversation
        with self.tracer.start_as_current_span(
            f"process {ctx.queue}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ) as span:
            token = HANDED_ON.set(functools.partial(_handed_on, span.get_span_context(), parent))
            try:
                return await call_next()
            finally:
                HANDED_ON.reset(token)

    def _common(self, queue: str, task_id: str, task: str) -> dict[str, Any]:
        return {
            "messaging.system": SYSTEM,
            "messaging.destination.name": queue,
            "messaging.message.id": task_id,
            "messaging.stem_pg.task": task,
            "messaging.stem_pg.namespace": self.namespace(),
        }


def _handed_on(run: SpanContext, parent: Context) -> dict[str, Any]:
    """The trace headers of a job that carries on ``run``'s work: in the producer's trace
    (``parent``), linked to ``run``."""
    headers: dict[str, Any] = {TRACE_LINKS_HEADER: [_traceparent(run)]}
    _W3C.inject(headers, context=parent)
    return headers


def _conversation(headers: Mapping[str, Any] | None) -> str | None:
    """The canvas or workflow run a job belongs to: the conventions' conversation id."""
    if not headers:
        return None
    found = headers.get(CANVAS_HEADER) or headers.get(WORKFLOW_HEADER)
    return found if isinstance(found, str) else None


def _span_context(context: Context) -> SpanContext | None:
    found = trace.get_current_span(context).get_span_context()
    return found if found.is_valid else None


def _traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
