"""OpenTelemetry tracing of an app's jobs (the ``otel`` extra): ``instrument(app)``.

Each planned job gets a PRODUCER span whose W3C trace context travels in the
job's headers; each run of it on a worker gets a CONSUMER span in that trace,
linked to the producer (every attempt of a retried job is), to the previous link
of a chain and to a chord's members. Spans follow the OpenTelemetry messaging
conventions and go to whichever TracerProvider the application set up (any
exporter). An app that is not instrumented imports nothing from OpenTelemetry
and pays nothing per job.
"""

from __future__ import annotations

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("stem_pg.tracing needs OpenTelemetry: pip install 'stem_pg[otel]'") from exc

from stem_pg.tracing.instrument import instrument, is_instrumented, uninstrument

__all__ = ["instrument", "is_instrumented", "uninstrument"]
