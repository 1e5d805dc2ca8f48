"""The seam between planning and tracing: what the planner asks of a tracer, with no tracing
library behind it (stem_pg.tracing implements it with OpenTelemetry)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Protocol

#: A job header listing the W3C trace contexts (``traceparent`` values) of the jobs this one
#: follows: the previous link of a chain, a chord's members. A consumer span links to them.
TRACE_LINKS_HEADER = "stem-trace-links"
#: The most contexts one job links to (a chord of thousands links to its first members).
MAX_TRACE_LINKS = 32
#: The headers tracing may add to a workflow's resume job (which is not signed: the
#: signature check lets these through, see stem_pg.worker.verify).
TRACE_HEADERS = frozenset({"traceparent", "tracestate", TRACE_LINKS_HEADER})

#: While a traced job runs: what makes the trace headers of a job that carries on its work
#: (the resume job of a workflow run that suspends): its producer's context, a link to this run.
HANDED_ON: ContextVar[Callable[[], Mapping[str, Any]] | None] = ContextVar(
    "stem_pg_trace_handed_on", default=None
)


class PublishTracing(Protocol):
    """Called by ``Planner.plan`` for each job when an app is instrumented, and around the
    enqueues that write jobs."""

    def sending(self, count: int) -> AbstractContextManager[object]:
        """The span of writing ``count`` jobs (planned inside it): one job's producer span,
        or a batch's, whose jobs get producer spans of their own."""
        ...

    def stamp(self, task_id: str, task: str, queue: str, headers: Mapping[str, Any]) -> Mapping[str, Any]:
        """``headers`` plus the trace context of this job's producer span (which it records)."""
        ...

    def links(self, headers: Sequence[str]) -> Mapping[str, Any]:
        """The header that links a job to the jobs whose JSON ``headers`` are given (empty
        when none of them carries a trace context)."""
        ...
