"""Eager mode (stem_pg.testing.eager): tasks run inline at enqueue through the worker's own
executor, with no database (the app's URL points nowhere: any query would fail)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from stem_pg import TaskCancelled, TaskContext, TaskFailed, chain, chord, group
from stem_pg.client.app import Stem
from stem_pg.client.tasks import Task
from stem_pg.config.settings import StemConfig
from stem_pg.core.errors import BadArgumentsError, UnknownTaskWarning
from stem_pg.core.signals import TaskInfo, TaskOutcome
from stem_pg.core.tasks import Reject
from stem_pg.testing import EagerError, EagerResult, assert_enqueued, eager, enqueued_jobs

NOWHERE = "postgresql://stem@127.0.0.1:1/nowhere"  # refused at once, were anything to connect


@pytest.fixture
def app() -> Stem:
    app = Stem(NOWHERE, namespace="eager-tests", config=StemConfig())

    @app.task(name="t.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task(name="t.chained", max_retries=0)
    def chained(x: int, result: int = 0) -> int:
        return result + x

    @app.task(name="t.boom", max_retries=0)
    def boom(result: int = 0) -> int:
        raise ValueError(f"bad input {result}")

    @app.task(name="t.total")
    def total(results: list[int]) -> int:
        return sum(results)

    return app


def test_delay_runs_the_handler_at_once_and_get_returns_its_value(app: Stem) -> None:
    with app.testing.eager() as mode:
        handle = app.enqueue("t.add", {"x": 2, "y": 3})
        assert isinstance(handle, EagerResult)
        assert handle.get() == 5
        assert handle.state == "succeeded"
        assert app.result(handle.id).get() == 5
    assert [(job.task, job.state, job.attempts) for job in mode.jobs] == [("t.add", "succeeded", 1)]
    assert "enqueue" not in vars(app)  # the app's own methods are back


def test_task_methods_and_the_module_function_go_eager_too(app: Stem) -> None:
    @app.task(name="t.add2")
    def add(x: int, y: int = 0) -> int:
        return x + y

    with eager(app):
        assert add.delay(4, 5).get() == 9
        assert add.enqueue(x=1).get() == 1
        assert add.s(x=7).delay().get() == 7
        assert add.options(queue="default").enqueue(2, 2).get() == 4


def test_the_handler_gets_its_context(app: Stem) -> None:
    @app.task(name="t.ctx", queue="default")
    def seen(ctx: TaskContext) -> dict[str, Any]:
        return {"id": ctx.task_id, "attempt": ctx.attempt, "queue": ctx.queue, "worker": ctx.worker_id}

    with app.testing.eager():
        handle = app.enqueue("t.ctx")
        assert handle.get() == {"id": handle.id, "attempt": 1, "queue": "default", "worker": "eager"}


def test_retries_follow_the_task_policy_without_waiting(app: Stem) -> None:
    calls: list[int] = []

    @app.task(name="t.flaky", max_retries=3, retry_backoff=60)  # a worker would wait minutes
    def flaky(ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")
        return ctx.attempt

    with app.testing.eager() as mode:
        assert app.enqueue("t.flaky").get() == 3
    assert calls == [1, 2, 3]
    (job,) = mode.jobs
    assert job.errors == ["ConnectionError: try 1", "ConnectionError: try 2"]
    assert len(job.retry_delays) == 2 and all(delay > 0 for delay in job.retry_delays)


def test_a_task_out_of_retries_fails_as_on_a_worker(app: Stem) -> None:
    @app.task(name="t.always", max_retries=2)
    def always() -> None:
        raise ValueError("boom")

    with app.testing.eager() as mode:
        handle = app.enqueue("t.always")
        with pytest.raises(TaskFailed, match="ValueError: boom") as failed:
            handle.get()
        assert handle.get(propagate=False) is None
    assert failed.value.traceback is not None and "raise ValueError" in failed.value.traceback
    (job,) = mode.jobs
    assert (job.state, job.attempts, job.dead_reason) == ("failed", 3, "max_retries_exceeded")
    assert isinstance(job.exception, ValueError)


def test_reject_and_ctx_retry_are_honoured(app: Stem) -> None:
    @app.task(name="t.reject", max_retries=5)
    def reject() -> None:
        raise Reject("not for us")

    @app.task(name="t.later", max_retries=1)
    def later(ctx: TaskContext) -> int:
        if ctx.attempt == 1:
            ctx.retry(countdown=3600)
        return ctx.attempt

    with app.testing.eager() as mode:
        with pytest.raises(TaskFailed, match="Reject: not for us"):
            app.enqueue("t.reject").get()
        assert app.enqueue("t.later").get() == 2
    assert [(j.attempts, j.dead_reason, j.retry_delays) for j in mode.jobs] == [
        (1, "rejected", []),
        (2, None, [3600]),
    ]


def test_propagate_raises_what_the_handler_raised(app: Stem) -> None:
    with app.testing.eager(propagate=True), pytest.raises(ValueError, match="bad input 0"):
        app.enqueue("t.boom")


def test_bad_arguments_and_unknown_tasks_fail_as_they_would(app: Stem) -> None:
    with app.testing.eager() as mode:
        with pytest.raises(BadArgumentsError, match="missing a required argument: 'x'"):
            app.enqueue("t.add", {"y": 1})  # refused at enqueue, as by the planner always
        with pytest.warns(UnknownTaskWarning), pytest.raises(TaskFailed, match=r"did you mean 't\.add'"):
            app.enqueue("t.ad", {"x": 1}).get()
    assert [(job.task, job.dead_reason) for job in mode.jobs] == [("t.ad", "unregistered_task")]


def test_middleware_and_signals_run_as_on_a_worker(app: Stem) -> None:
    seen: list[str] = []

    @app.middleware
    async def around(info: TaskInfo, call_next: Any) -> Any:
        seen.append(f"before {info.task} on {info.worker_id}")
        value = await call_next()
        seen.append(f"after {value}")
        return value

    @app.on("task_succeeded")
    def succeeded(outcome: TaskOutcome) -> None:
        seen.append(f"succeeded {outcome.result}")

    with app.testing.eager():
        app.enqueue("t.add", {"x": 1, "y": 1})
    assert seen == ["before t.add on eager", "after 2", "succeeded 2"]


def test_a_task_that_enqueues_another_runs_it_inline(app: Stem) -> None:
    @app.task(name="t.parent")
    def parent(x: int) -> int:
        return int(app.enqueue("t.add", {"x": x, "y": 1}).get()) * 10

    with app.testing.eager() as mode:
        assert app.enqueue("t.parent", {"x": 4}).get() == 50
    assert [job.task for job in mode.jobs] == ["t.parent", "t.add"]


def test_chain_group_and_chord_hand_results_on(app: Stem) -> None:
    link: Task[..., Any] = Task(app, app.registry["t.chained"])
    with app.testing.eager():
        assert chain(link.s(x=1), link.s(x=10), link.s(x=100)).delay().get() == 111
        assert group(link.s(x=i) for i in range(5)).delay().get() == [0, 1, 2, 3, 4]
        both = chord([link.s(x=1), link.s(x=2)], app.signature("t.total")).delay()
        assert both.get() == 3
        assert [member.state for member in both.members] == ["succeeded"] * 3


def test_a_failing_link_stops_the_chain_as_the_database_does(app: Stem) -> None:
    link: Task[..., Any] = Task(app, app.registry["t.chained"])
    boom: Task[..., Any] = Task(app, app.registry["t.boom"])
    with app.testing.eager():
        stopped = chain(link.s(x=1), boom.s(), link.s(x=5)).delay()
        with pytest.raises(TaskCancelled, match=r"chain stopped: link 1 \(t.boom\) failed: ValueError: bad"):
            stopped.get()
        assert [member.state for member in stopped.members] == ["succeeded", "failed", "cancelled"]
        assert stopped.status() is not None
        callback = app.signature("t.total")
        failed = chord([link.s(x=1), boom.s()], callback).delay()
        with pytest.raises(TaskCancelled, match=r"chord member 1 \(t.boom\) failed"):
            failed.get()


def test_enqueue_many_checks_every_request_before_running_any(app: Stem) -> None:
    with app.testing.eager() as mode:
        handles = app.enqueue_many([("t.add", {"x": 1}), ("t.add", {"x": 2})])
        assert [h.get() for h in handles] == [1, 2]
        with pytest.raises(BadArgumentsError, match="enqueue_many item 1"):
            app.enqueue_many([("t.add", {"x": 3}), ("t.add", {})])
    assert len(mode.jobs) == 2


async def test_aenqueue_runs_async_handlers_on_the_callers_loop(app: Stem) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    @app.task(name="t.async")
    async def on_loop(x: int) -> int:
        loops.append(asyncio.get_running_loop())
        return x * 2

    with app.testing.eager():
        handle = await app.aenqueue("t.async", {"x": 21})
        assert await handle.wait() == 42
        assert app.enqueue("t.add", {"x": 1}).get() == 1  # a sync enqueue inside async code
    assert loops == [asyncio.get_running_loop()]


def test_sync_handlers_run_in_a_thread_as_on_a_worker(app: Stem) -> None:
    @app.task(name="t.thread")
    def where() -> bool:
        return threading.current_thread() is threading.main_thread()

    with app.testing.eager():
        assert app.enqueue("t.thread").get() is False


def test_what_needs_a_database_is_refused_clearly(app: Stem) -> None:
    with app.testing.eager():
        with pytest.raises(EagerError, match="workflows need a database"):
            app.start_workflow("wf.any")
        with pytest.raises(EagerError, match="not enqueued in this eager block"):
            app.result("0190b6a4-0000-7000-8000-000000000000")
        with pytest.raises(EagerError, match="do not nest"):
            app.testing.eager().__enter__()


def test_assertions_read_the_eager_record(app: Stem) -> None:
    add: Task[..., Any] = Task(app, app.registry["t.add"])
    with app.testing.eager():
        add.delay(1, 2)
        add.delay(3)
        assert [job.kwargs for job in enqueued_jobs(app, "t.add")] == [{"x": 1, "y": 2}, {"x": 3}]
        assert_enqueued(add, kwargs={"x": 3})
        assert_enqueued("t.add", count=2)
        app.testing.assert_enqueued(add, kwargs={"x": 1}, queue="default")
        with pytest.raises(AssertionError) as missing:
            assert_enqueued(add, kwargs={"x": 9})
    assert str(missing.value) == (
        "expected a job of task 't.add' with kwargs including {'x': 9}; found 0 among the 2"
        " enqueued job(s):\n"
        "  t.add(x=1, y=2) queue=default priority=0 state=succeeded\n"
        "  t.add(x=3) queue=default priority=0 state=succeeded"
    )


def test_an_app_without_any_database_url_runs_eagerly() -> None:
    bare = Stem(namespace="no-url", config=StemConfig())  # no URL anywhere: fine until one is needed

    @bare.task(name="t.hello")
    def hello(name: str) -> str:
        return f"hello {name}"

    with bare.testing.eager():
        assert hello.delay("you").get() == "hello you"
