"""Hooks and middleware (stem_pg.core.signals) around real jobs, on a real Postgres and worker."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from stem_pg import WorkflowContext
from stem_pg.beat.scheduler import Beat, BeatSettings
from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.client.schedules import Schedules
from stem_pg.core.schedules import parse_entry
from stem_pg.core.signals import (
    BeatFired,
    CallNext,
    ControlInfo,
    PublishInfo,
    TaskInfo,
    TaskOutcome,
    WorkerInfo,
)
from stem_pg.core.tasks import Retry
from tests.helpers import running_worker, wait_for


def test_hooks_and_middleware_run_in_the_documented_order(app: Stem) -> None:
    events: list[str] = []

    @app.task(name="hooks.add")
    def add(x: int, y: int) -> int:
        events.append("handler")
        return x + y

    @app.on("task_received")
    def received(info: TaskInfo) -> None:
        events.append(f"received {info.task} {dict(info.args)}")

    @app.on("task_started")
    def started(info: TaskInfo) -> None:
        events.append("started")

    @app.middleware
    async def outer(ctx: TaskInfo, call_next: CallNext) -> Any:
        events.append(f"outer before {ctx.task_id}")
        value = await call_next()
        events.append(f"outer after {value}")
        return value

    @app.middleware
    async def inner(ctx: TaskInfo, call_next: CallNext) -> Any:
        events.append("inner before")
        value = await call_next()
        events.append("inner after")
        return value

    @app.on("task_succeeded")
    def succeeded(outcome: TaskOutcome) -> None:
        events.append(f"succeeded {outcome.state} {outcome.result}")

    with running_worker(app):
        handle = app.enqueue("hooks.add", {"x": 2, "y": 3}, task_id="ordered")
        assert handle.get(timeout=10) == 5
        wait_for(lambda: len(events) >= 8, what="every hook")
    assert events == [
        "received hooks.add {'x': 2, 'y': 3}",
        "started",
        "outer before ordered",
        "inner before",
        "handler",
        "inner after",
        "outer after 5",
        "succeeded succeeded 5",
    ]


def test_middleware_wraps_async_handlers_and_sees_their_context(app: Stem) -> None:
    seen: list[tuple[str, int]] = []

    @app.task(name="hooks.async_double")
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @app.middleware
    async def plus_one(ctx: TaskInfo, call_next: CallNext) -> Any:
        value = await call_next()
        seen.append((ctx.task, ctx.attempt))
        return value + 1

    with running_worker(app):
        assert app.enqueue("hooks.async_double", {"n": 20}).get(timeout=10) == 41
    assert seen == [("hooks.async_double", 1)]


def test_a_failing_task_sends_failed_retried_and_dead_lettered(app: Stem) -> None:
    events: list[tuple[str, str, int, str | None]] = []

    @app.task(name="hooks.flaky", max_retries=1)
    def flaky() -> None:
        raise Retry(countdown=0, exc=ValueError("boom"))

    def recorder(name: str) -> Any:
        def record(outcome: TaskOutcome) -> None:
            events.append((name, outcome.state, outcome.info.attempt, outcome.error))

        return record

    for name in ("task_failed", "task_retried", "task_dead_lettered", "task_succeeded"):
        app.signals[name].connect(recorder(name))
    with running_worker(app):
        app.enqueue("hooks.flaky", {}, task_id="flaky")
        wait_for(lambda: len(events) >= 4, what="four outcome signals")
    assert events == [
        ("task_failed", "retried", 1, "ValueError: boom"),
        ("task_retried", "retried", 1, "ValueError: boom"),
        ("task_failed", "failed", 2, "ValueError: boom"),
        ("task_dead_lettered", "failed", 2, "ValueError: boom"),
    ]


def test_a_failing_receiver_is_logged_and_does_not_fail_the_job(
    app: Stem, caplog: pytest.LogCaptureFixture
) -> None:
    after: list[str] = []

    @app.task(name="hooks.ok")
    def ok() -> str:
        return "fine"

    @app.on("task_started")
    def broken(info: TaskInfo) -> None:
        raise RuntimeError("receiver bug")

    @app.on("task_started")
    def next_one(info: TaskInfo) -> None:
        after.append(info.task_id)

    @app.on("task_succeeded")
    async def broken_too(outcome: TaskOutcome) -> None:
        raise KeyError("async receiver bug")

    with caplog.at_level(logging.ERROR, logger="stem_pg.core.signals"), running_worker(app):
        assert app.enqueue("hooks.ok", {}, task_id="survives").get(timeout=10) == "fine"
        wait_for(lambda: len(caplog.records) >= 2, what="two logged receiver errors")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "signal task_started: receiver "
        f"{__name__}.test_a_failing_receiver_is_logged_and_does_not_fail_the_job.<locals>.broken"
        " failed: RuntimeError: receiver bug",
        "signal task_succeeded: receiver "
        f"{__name__}.test_a_failing_receiver_is_logged_and_does_not_fail_the_job.<locals>.broken_too"
        " failed: KeyError: 'async receiver bug'",
    ]
    assert after == ["survives"]
    status = app.result("survives").status()
    assert status is not None and status.state == "succeeded"


def test_async_receivers_are_awaited(app: Stem) -> None:
    done: list[str] = []

    @app.task(name="hooks.noop")
    def noop() -> None:
        return None

    @app.on("task_succeeded")
    async def later(outcome: TaskOutcome) -> None:
        await asyncio.sleep(0.01)
        done.append(outcome.info.task_id)

    with running_worker(app):
        app.enqueue("hooks.noop", {}, task_id="awaited").get(timeout=10)
        wait_for(lambda: done, what="the async receiver")
    assert done == ["awaited"]


def test_publish_signals_fire_on_enqueue(app: Stem) -> None:
    seen: list[tuple[str, PublishInfo]] = []
    app.signals.before_publish.connect(lambda info: seen.append(("before", info)))
    app.signals.after_publish.connect(lambda info: seen.append(("after", info)))
    app.enqueue("hooks.remote", {"a": 1}, task_id="pub-1", priority=3)
    assert seen == [
        ("before", PublishInfo("hooks.remote", "pub-1", "default", 3)),
        ("after", PublishInfo("hooks.remote", "pub-1", "default", 3)),
    ]
    seen.clear()
    asyncio.run(app.aenqueue("hooks.remote", {}, task_id="pub-2"))
    assert [(when, info.task_id) for when, info in seen] == [("before", "pub-2"), ("after", "pub-2")]
    seen.clear()
    app.enqueue_many([("hooks.remote", {"n": n}) for n in range(3)])
    assert [when for when, _ in seen] == ["before"] * 3 + ["after"] * 3


def test_publish_signals_call_async_receivers_from_sync_enqueue(app: Stem) -> None:
    seen: list[str] = []

    @app.on("after_publish")
    async def published(info: PublishInfo) -> None:
        seen.append(info.task_id)

    app.enqueue("hooks.remote", {}, task_id="async-receiver")
    assert seen == ["async-receiver"]


def test_worker_signals_fire_as_it_starts_and_stops(app: Stem) -> None:
    events: list[tuple[str, WorkerInfo]] = []

    def recorder(name: str) -> Any:
        return lambda info: events.append((name, info))

    for name in ("worker_started", "worker_stopping", "worker_stopped"):
        app.signals[name].connect(recorder(name))
    with running_worker(app, worker_id="hooked") as worker:
        wait_for(lambda: events, what="worker_started")
        assert worker.id == "hooked"
    expected = WorkerInfo("hooked", app.namespace, ("default",))
    assert events == [
        ("worker_started", expected),
        ("worker_stopping", expected),
        ("worker_stopped", expected),
    ]


def test_unknown_signals_and_sync_middleware_are_refused(app: Stem) -> None:
    with pytest.raises(KeyError, match="no signal 'task_exploded'; known: before_publish"):
        app.on("task_exploded")
    with pytest.raises(TypeError, match="must be an async def"):
        app.middleware(lambda ctx, call_next: call_next())


def test_workflow_signals_follow_a_run_through_a_suspension(app: Stem) -> None:
    events: list[tuple[str, int, Any]] = []

    @app.workflow(name="hooks.nap")
    async def nap(ctx: WorkflowContext, who: str) -> str:
        await ctx.sleep(0.2)
        return f"rested {who}"

    def recorder(name: str) -> Any:
        return lambda info: events.append((name, info.resumes, info.result))

    for name in ("workflow_started", "workflow_suspended", "workflow_resumed", "workflow_ended"):
        app.signals[name].connect(recorder(name))
    with running_worker(app):
        run = app.start_workflow("hooks.nap", {"who": "ann"})
        assert run.get(timeout=10) == "rested ann"
        wait_for(lambda: len(events) >= 4, what="four workflow signals")
    assert events == [
        ("workflow_started", 0, None),
        ("workflow_suspended", 0, None),
        ("workflow_resumed", 1, None),
        ("workflow_ended", 1, "rested ann"),
    ]


async def test_beat_fired_is_sent_per_fire(app: Stem, database_url: str) -> None:
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    fired: list[BeatFired] = []
    app.signals.beat_fired.connect(fired.append)
    Schedules(app.url, app.namespace, clock=lambda: t0).save(
        parse_entry("tick", {"task": "hooks.tick", "spec": "every:10s"})
    )
    beat = Beat(app, BeatSettings(beat_id="beat-hooks"), clock=lambda: t0)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await beat.run_once(conn, now=t0 + timedelta(seconds=5))
        assert fired == []
        await beat.run_once(conn, now=t0 + timedelta(seconds=10.2))
    [shot] = fired
    assert (shot.schedule, shot.task, shot.fire_time) == ("tick", "hooks.tick", t0 + timedelta(seconds=10))
    assert shot.task_id is not None and app.result(shot.task_id).status() is not None


def test_control_command_received_is_sent_by_the_worker(app: Stem) -> None:
    received: list[ControlInfo] = []
    app.signals.control_command_received.connect(received.append)
    started: list[WorkerInfo] = []
    app.signals.worker_started.connect(started.append)
    with running_worker(app, worker_id="controlled"):
        wait_for(lambda: started, what="worker_started")
        assert list(Control(app.url, app.namespace).ping(timeout=5).replies) == ["controlled"]
    [command] = received
    assert (command.command, command.worker_id) == ("ping", "controlled")
