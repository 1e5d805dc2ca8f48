"""run_until_idle and the enqueue assertions (stem_pg.testing) on a real Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stem_pg import TaskContext, chain
from stem_pg.client.app import Stem
from stem_pg.client.tasks import Task
from stem_pg.testing import (
    JobOutcome,
    arun_until_idle,
    assert_enqueued,
    assert_not_enqueued,
    enqueued_jobs,
    run_until_idle,
)


def _tasks(app: Stem) -> None:
    @app.task(name="h.add", max_retries=0)
    def add(x: int, result: int = 0) -> int:
        return result + x

    @app.task(name="h.fail", max_retries=0)
    def fail() -> None:
        raise ValueError("boom")

    @app.task(name="h.report", queue="reports")
    async def report(day: str) -> str:
        return f"report {day}"


def test_run_until_idle_runs_what_is_due_and_returns_the_outcomes(app: Stem) -> None:
    _tasks(app)
    first = app.enqueue("h.add", {"x": 1})
    failed = app.enqueue("h.fail")
    report = app.enqueue("h.report", {"day": "mon"})  # another queue, found without being named
    later = app.enqueue("h.add", {"x": 5}, countdown=3600)

    outcomes = run_until_idle(app)

    by_id = {outcome.id: outcome for outcome in outcomes}
    assert by_id[first.id] == JobOutcome(first.id, "h.add", "default", "succeeded", 1)
    assert by_id[report.id] == JobOutcome(report.id, "h.report", "reports", "succeeded", "report mon")
    assert (by_id[failed.id].state, by_id[failed.id].error) == ("failed", "ValueError: boom")
    assert by_id[failed.id].dead_reason == "max_retries_exceeded"
    assert later.id not in by_id  # not due: left waiting
    assert [job.id for job in enqueued_jobs(app)] == [later.id]
    assert first.get(timeout=1) == 1  # the result is stored: run_until_idle returned after the flush


def test_a_chain_goes_on_until_its_last_link(app: Stem) -> None:
    _tasks(app)
    add: Task[..., Any] = Task(app, app.registry["h.add"])
    result = chain(add.s(x=1), add.s(x=10), add.s(x=100)).delay()
    outcomes = run_until_idle(app)
    assert [(o.task, o.result) for o in outcomes] == [("h.add", 1), ("h.add", 11), ("h.add", 111)]
    assert result.get(timeout=1) == 111


def test_with_scheduled_runs_retries_and_countdowns_without_waiting(app: Stem) -> None:
    @app.task(name="h.flaky", max_retries=3, retry_backoff=3600)
    def flaky(ctx: TaskContext) -> int:
        if ctx.attempt < 3:
            raise ConnectionError("not yet")
        return ctx.attempt

    handle = app.enqueue("h.flaky")
    (waiting,) = run_until_idle(app)
    assert (waiting.state, waiting.attempt, waiting.error) == ("retried", 1, "ConnectionError: not yet")
    assert_enqueued("h.flaky", app=app)

    (done,) = run_until_idle(app, with_scheduled=True)
    assert (done.state, done.attempt, done.result) == ("succeeded", 3, 3)
    assert handle.get(timeout=1) == 3
    assert enqueued_jobs(app) == []


def test_jobs_still_running_after_the_timeout_are_an_error(app: Stem) -> None:
    @app.task(name="h.slow")
    async def slow() -> None:
        await asyncio.sleep(30)

    app.enqueue("h.slow")
    with pytest.raises(TimeoutError, match=r"1 job\(s\) still due or running on default after 0.5s"):
        run_until_idle(app, timeout=0.5)


async def test_arun_until_idle_drains_from_async_code(app: Stem) -> None:
    _tasks(app)
    handle = await app.aenqueue("h.report", {"day": "tue"})
    outcomes = await app.testing.arun_until_idle(queues=["reports"])
    assert [(o.id, o.result) for o in outcomes] == [(handle.id, "report tue")]
    assert await arun_until_idle(app) == []


def test_assertions_read_the_jobs_table_and_list_it_when_they_fail(app: Stem) -> None:
    _tasks(app)
    add: Task[..., Any] = Task(app, app.registry["h.add"])
    add.enqueue(x=1)
    app.enqueue("h.report", {"day": "wed"}, priority=5)

    jobs = assert_enqueued(add, kwargs={"x": 1}, queue="default", count=1)
    assert [(job.task, job.kwargs, job.state) for job in jobs] == [("h.add", {"x": 1}, "queued")]
    app.testing.assert_enqueued("h.report", priority=5)
    assert_not_enqueued(add, kwargs={"x": 2})
    assert [job.task for job in enqueued_jobs(app, queue="reports")] == ["h.report"]

    with pytest.raises(AssertionError) as missing:
        assert_enqueued(add, kwargs={"x": 2})
    assert str(missing.value) == (
        "expected a job of task 'h.add' with kwargs including {'x': 2}; found 0 among the 2"
        " enqueued job(s):\n"
        "  h.add(x=1) queue=default priority=0 state=queued\n"
        "  h.report(day='wed') queue=reports priority=5 state=queued"
    )
    with pytest.raises(AssertionError, match=r"expected no job of task 'h\.add'; found 1"):
        assert_not_enqueued(add)
    with pytest.raises(TypeError, match="pass app="):
        assert_enqueued("h.add")

    run_until_idle(app)
    with pytest.raises(AssertionError, match=r"found 0 \(nothing is enqueued\)"):
        assert_enqueued(add)
