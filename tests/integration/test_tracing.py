"""OpenTelemetry tracing (stem_pg.tracing) of real jobs on a real Postgres and worker, seen
through the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from psycopg import sql

from stem_pg import TaskContext, WorkflowContext, chain, chord
from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.tasks import Retry
from stem_pg.tracing import instrument, is_instrumented, uninstrument
from tests.helpers import running_worker, wait_for


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def _spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def _wait_spans(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    wait_for(lambda: len(_spans(exporter, name)) >= count, what=f"{count} {name!r} span(s)")
    return _spans(exporter, name)


def _linked(span: ReadableSpan) -> set[int]:
    return {link.context.span_id for link in span.links}


def test_a_job_has_producer_and_consumer_spans_of_one_trace(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)
    tracer = provider.get_tracer("test")
    seen: dict[str, Any] = {}

    @app.task(name="t.add")
    def add(x: int, y: int, ctx: TaskContext) -> int:
        seen["headers"] = dict(ctx.headers)
        with tracer.start_as_current_span("inside the handler"):
            return x + y

    with running_worker(app), tracer.start_as_current_span("request") as request:
        assert app.enqueue("t.add", {"x": 2, "y": 3}, task_id="traced").get(timeout=10) == 5
    [send] = _wait_spans(exporter, "send default", 1)
    [process] = _wait_spans(exporter, "process default", 1)
    [inside] = _wait_spans(exporter, "inside the handler", 1)

    trace_id = request.get_span_context().trace_id
    assert {send.context.trace_id, process.context.trace_id, inside.context.trace_id} == {trace_id}
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert _linked(process) == {send.context.span_id}
    assert inside.parent is not None and inside.parent.span_id == process.context.span_id  # a sync handler
    assert seen["headers"]["traceparent"].startswith(f"00-{trace_id:032x}-{send.context.span_id:016x}-")
    common = {
        "messaging.system": "stem_pg",
        "messaging.destination.name": "default",
        "messaging.message.id": "traced",
        "messaging.stem_pg.task": "t.add",
        "messaging.stem_pg.namespace": app.namespace,
    }
    assert dict(send.attributes or {}) == {
        **common,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    assert dict(process.attributes or {}) == {
        **common,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.client.id": seen_worker_id(process),
        "messaging.stem_pg.attempt": 1,
    }
    assert process.status.status_code is StatusCode.UNSET


def _attempt(span: ReadableSpan) -> int:
    attempt = (span.attributes or {})["messaging.stem_pg.attempt"]
    assert isinstance(attempt, int)
    return attempt


def seen_worker_id(span: ReadableSpan) -> str:
    worker_id = (span.attributes or {}).get("messaging.client.id")
    assert isinstance(worker_id, str) and worker_id
    return worker_id


def test_each_attempt_of_a_retried_job_is_a_consumer_span_linked_to_the_producer(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.task(name="t.flaky", max_retries=1)
    def flaky(ctx: TaskContext) -> str:
        if ctx.attempt == 1:
            raise Retry(countdown=0, exc=ValueError("first try"))
        return "second try"

    with running_worker(app):
        assert app.enqueue("t.flaky", {}).get(timeout=10) == "second try"
        first, second = sorted(_wait_spans(exporter, "process default", 2), key=_attempt)
    [send] = _spans(exporter, "send default")
    for attempt in (first, second):
        assert attempt.context.trace_id == send.context.trace_id
        assert _linked(attempt) == {send.context.span_id}
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET


def test_a_chains_spans_share_a_trace_and_each_link_follows_the_previous(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.task(name="t.inc")
    def inc(x: int = 0, result: int = 0) -> int:
        return result + x + 1

    @app.task(name="t.total")
    def total(results: list[int]) -> int:
        return sum(results)

    links = [app.signature("t.inc", x=1), app.signature("t.inc"), app.signature("t.inc")]
    with running_worker(app):
        assert app.apply(chain(links)).get(timeout=10) == 4
        processes = _wait_spans(exporter, "process default", 3)
    [send] = _spans(exporter, "send default")
    creates = _spans(exporter, "create default")  # in chain order
    assert send.kind is SpanKind.CLIENT and (send.attributes or {})["messaging.batch.message_count"] == 3
    assert [c.kind for c in creates] == [SpanKind.PRODUCER] * 3
    assert {c.parent.span_id for c in creates if c.parent} == {send.context.span_id}
    assert len({span.context.trace_id for span in [send, *creates, *processes]}) == 1
    first, second, third = sorted(processes, key=lambda s: s.start_time or 0)
    assert [p.parent.span_id for p in (first, second, third) if p.parent] == [
        c.context.span_id for c in creates
    ]
    assert _linked(first) == {creates[0].context.span_id}
    assert _linked(second) == {creates[1].context.span_id, creates[0].context.span_id}
    assert _linked(third) == {creates[2].context.span_id, creates[1].context.span_id}
    canvas = {(s.attributes or {}).get("messaging.message.conversation_id") for s in [*creates, *processes]}
    assert len(canvas) == 1 and None not in canvas

    exporter.clear()
    with running_worker(app):
        members = [app.signature("t.inc", x=n) for n in range(3)]
        assert app.apply(chord(members, app.signature("t.total"))).get(timeout=10) == 6
        processes = _wait_spans(exporter, "process default", 4)
    creates = _spans(exporter, "create default")
    callback = next(p for p in processes if (p.attributes or {})["messaging.stem_pg.task"] == "t.total")
    assert _linked(callback) == {c.context.span_id for c in creates}  # its own producer and the 3 members'


def test_a_workflow_run_is_one_trace_and_a_resume_links_the_run_before_it(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.workflow(name="t.flow")
    async def flow(ctx: WorkflowContext) -> str:
        await ctx.sleep(0.1)
        return "done"

    with running_worker(app), provider.get_tracer("test").start_as_current_span("caller") as caller:
        run = app.start_workflow("t.flow")
        assert run.get(timeout=10) == "done"
        first, resumed = sorted(_wait_spans(exporter, "process default", 2), key=lambda s: s.start_time or 0)
    [send] = _spans(exporter, "send default")
    assert {send.context.trace_id, first.context.trace_id, resumed.context.trace_id} == {
        caller.get_span_context().trace_id
    }
    for process in (first, resumed):
        assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert _linked(first) == {send.context.span_id}
    assert _linked(resumed) == {send.context.span_id, first.context.span_id}
    for span in (send, first, resumed):
        assert (span.attributes or {})["messaging.message.conversation_id"] == run.id


def test_signed_jobs_and_unsigned_resume_jobs_carry_their_trace_context(
    database_url: str, namespace: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    signed = Stem(
        database_url, namespace=namespace, config=StemConfig(), signing={"k1": "tracing-secret-0123456789"}
    )
    instrument(signed, tracer_provider=provider)

    @signed.task(name="t.echo")
    def echo(word: str) -> str:
        return word

    @signed.workflow(name="t.nap")
    async def nap(ctx: WorkflowContext) -> str:
        await ctx.sleep(0.1)  # its resume job, written by the worker, is unsigned but traced
        return "rested"

    try:
        with running_worker(signed):
            assert signed.enqueue("t.echo", {"word": "hi"}).get(timeout=10) == "hi"
            assert signed.start_workflow("t.nap").get(timeout=10) == "rested"
            processes = _wait_spans(exporter, "process default", 3)
        sends = _spans(exporter, "send default")
        assert len(sends) == 2
        assert {p.parent.span_id for p in processes if p.parent} == {s.context.span_id for s in sends}
    finally:
        signed.close()


def test_uninstrument_stops_the_spans(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)
    instrument(app, tracer_provider=provider)  # again: still one middleware
    assert is_instrumented(app) and len(app.middleware_chain) == 1
    uninstrument(app)
    assert not is_instrumented(app) and app.middleware_chain == []

    @app.task(name="t.quiet")
    def quiet() -> str:
        return "ok"

    with running_worker(app):
        assert app.enqueue("t.quiet", {}).get(timeout=10) == "ok"
    assert exporter.get_finished_spans() == ()


def test_a_batch_is_one_client_span_and_each_job_has_its_own_producer_span(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter, db: Any, namespace: str
) -> None:
    instrument(app, tracer_provider=provider)

    @app.task(name="t.batched")
    def batched(n: int) -> int:
        return n

    handles = app.enqueue_many([("t.batched", {"n": n}) for n in range(3)])
    [send] = _spans(exporter, "send default")
    creates = _spans(exporter, "create default")
    assert send.kind is SpanKind.CLIENT and (send.attributes or {})["messaging.batch.message_count"] == 3
    assert [(c.attributes or {})["messaging.message.id"] for c in creates] == [h.id for h in handles]
    assert {c.parent.span_id for c in creates if c.parent} == {send.context.span_id}
    rows = db.execute(
        sql.SQL("SELECT id, headers ->> 'traceparent' FROM {}.jobs").format(sql.Identifier(namespace))
    ).fetchall()
    by_id = {c.context.span_id: (c.attributes or {})["messaging.message.id"] for c in creates}
    assert {task_id: int(tp.split("-")[2], 16) for task_id, tp in rows} == {v: k for k, v in by_id.items()}


async def test_aenqueue_is_traced_like_enqueue(
    app: Stem, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    instrument(app, tracer_provider=provider)

    @app.task(name="t.async")
    def in_async() -> None: ...

    with provider.get_tracer("test").start_as_current_span("caller") as caller:
        handle = await app.aenqueue("t.async", {})
    [send] = _spans(exporter, "send default")
    assert send.kind is SpanKind.PRODUCER and send.context.trace_id == caller.get_span_context().trace_id
    assert (send.attributes or {})["messaging.message.id"] == handle.id
