"""Tracing for the benchmark workers (``BENCH_TRACING=1``): the OpenTelemetry SDK records every
span and a batch processor hands them to an exporter that drops them, so a run measures what
tracing costs the worker, not an exporter's network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from stem_pg.tracing import instrument


class Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def instrument_with_sdk(app: Any) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    instrument(app, tracer_provider=provider)
