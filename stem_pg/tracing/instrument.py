"""Turning tracing on and off for one app (what ``stem_pg.tracing`` exports)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from stem_pg.client.app import Stem
from stem_pg.tracing.spans import JobTracing


def instrument(app: Stem, *, tracer_provider: TracerProvider | None = None) -> None:
    """Trace ``app``'s jobs: a producer span for each job it enqueues (also chains, chords,
    workflow runs), a consumer span for each run of one on a worker of this app.

    Call it where the app is built, so the enqueuing processes and the workers (which
    import the same module) are both instrumented. Spans go to ``tracer_provider``, by
    default the global one (``opentelemetry.trace.set_tracer_provider``). Instrumenting
    again replaces the earlier tracer. The consumer span is the outermost middleware.
    """
    uninstrument(app)
    tracer = trace.get_tracer("stem_pg", _version(), tracer_provider=tracer_provider)
    tracing = JobTracing(tracer, lambda: app.namespace)
    app.planner.tracing = tracing
    app.middleware_chain.insert(0, tracing.process)


def uninstrument(app: Stem) -> None:
    """Stop tracing ``app`` (for workers started from now on); nothing if it was not traced."""
    tracing = app.planner.tracing
    if isinstance(tracing, JobTracing):
        app.planner.tracing = None
        app.middleware_chain[:] = [m for m in app.middleware_chain if m != tracing.process]


def is_instrumented(app: Stem) -> bool:
    return isinstance(app.planner.tracing, JobTracing)


def _version() -> str:
    try:
        return version("stem_pg")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0"
