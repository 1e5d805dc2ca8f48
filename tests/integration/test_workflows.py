"""Durable workflows on a real Postgres with in-process workers."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from stem_pg import EventTimeout, WorkflowCancelled, WorkflowContext, WorkflowError, WorkflowFailed
from stem_pg.client.app import Stem
from tests.helpers import running_worker, wait_for

Db = psycopg.Connection[tuple[Any, ...]]


def _status(app: Stem, run_id: str) -> str | None:
    row = app.workflow_run(run_id).status()
    return None if row is None else row["status"]


def test_steps_checkpoint_and_the_run_completes(app: Stem, db: Db) -> None:
    calls: list[str] = []

    @app.workflow(name="wf.order")
    async def order(ctx: WorkflowContext, order_id: int) -> dict[str, Any]:
        def price() -> int:
            calls.append("price")
            return 40 + order_id

        total = await ctx.step("price", price)
        for _ in range(2):
            await ctx.step("ping", lambda: calls.append("ping"))
        charged = await ctx.step("charge", _charge, total)
        return {"total": total, "charged": charged}

    async def _charge(amount: int) -> str:
        calls.append("charge")
        return f"charged {amount}"

    with running_worker(app):
        run = order.start(order_id=2)
        assert run.get(timeout=15) == {"total": 42, "charged": "charged 42"}
    assert calls == ["price", "ping", "ping", "charge"]
    steps = [(s["step"], s["kind"], s["output"]) for s in run.steps()]
    assert steps == [
        ("price", "step", 42),
        ("ping", "step", None),
        ("ping#2", "step", None),
        ("charge", "step", "charged 42"),
    ]
    row = db.execute(
        f'SELECT status, steps_done FROM "{app.namespace}".workflow_runs WHERE id = %s', [run.id]
    ).fetchone()
    assert row == ("completed", 4)


def test_sleep_suspends_without_holding_a_worker_slot(app: Stem) -> None:
    @app.workflow(name="wf.nap")
    async def nap(ctx: WorkflowContext) -> str:
        await ctx.sleep(1.5)
        return "rested"

    @app.task(name="wf.other")
    def other() -> str:
        return "ran"

    with running_worker(app, concurrency=1):
        run = app.start_workflow("wf.nap")
        wait_for(lambda: _status(app, run.id) == "suspended")
        started = time.monotonic()
        assert app.enqueue("wf.other").get(timeout=5) == "ran"  # the only slot is free
        assert time.monotonic() - started < 1.0
        assert run.get(timeout=10) == "rested"
    status = run.status()
    assert status is not None and status["resumes"] == 1


def test_await_event_resumes_on_emit_and_times_out_on_its_deadline(app: Stem) -> None:
    @app.workflow(name="wf.approve")
    async def approve(ctx: WorkflowContext, timeout: float) -> Any:
        try:
            return await ctx.await_event("approvals", timeout=timeout)
        except EventTimeout:
            return "timed out"

    with running_worker(app):
        waiting = app.start_workflow("wf.approve", {"timeout": 30})
        late = app.start_workflow("wf.approve", {"timeout": 1})
        wait_for(lambda: _status(app, waiting.id) == "suspended" and _status(app, late.id) == "suspended")
        assert late.get(timeout=10) == "timed out"
        assert app.emit("approvals", {"by": "ann"}) == 1
        assert waiting.get(timeout=10) == {"by": "ann"}
        assert app.emit("approvals", {"by": "bob"}) == 0  # nobody waits any more


def test_child_workflow_result_reaches_its_parent(app: Stem) -> None:
    @app.workflow(name="wf.child")
    async def child(ctx: WorkflowContext, n: int) -> int:
        await ctx.sleep(0.2)
        doubled: int = await ctx.step("double", lambda: n * 2)
        return doubled

    @app.workflow(name="wf.parent")
    async def parent(ctx: WorkflowContext) -> list[int]:
        first = await ctx.child("wf.child", {"n": 1})
        second = await ctx.child("wf.child", {"n": 5})
        return [first, second]

    with running_worker(app, concurrency=4):
        run = app.start_workflow("wf.parent")
        assert run.get(timeout=20) == [2, 10]
    kinds = [(s["step"], s["kind"]) for s in run.steps()]
    assert kinds == [("child:wf.child", "child"), ("child:wf.child#2", "child")]


def test_cancel_stops_a_run_and_its_children(app: Stem, db: Db) -> None:
    @app.workflow(name="wf.slow_child")
    async def slow_child(ctx: WorkflowContext) -> None:
        await ctx.await_event("never")

    @app.workflow(name="wf.holder")
    async def holder(ctx: WorkflowContext) -> None:
        await ctx.child("wf.slow_child")

    with running_worker(app):
        run = app.start_workflow("wf.holder")
        wait_for(
            lambda: (
                db.execute(
                    f'SELECT count(*) FROM "{app.namespace}".wf_waiters WHERE topic = %s', ["never"]
                ).fetchone()
                == (1,)
            )
        )
        cancelled = app.cancel_workflow(run.id, reason="no longer needed")
        assert len(cancelled) == 2
        with pytest.raises(WorkflowCancelled, match="no longer needed"):
            run.get(timeout=5)
        assert app.cancel_workflow(run.id) == []  # ended runs stay as they are
    assert db.execute(f'SELECT count(*) FROM "{app.namespace}".wf_waiters').fetchone() == (0,)


def test_a_failing_workflow_fails_after_its_retries_and_a_replay_resumes_it(app: Stem) -> None:
    from stem_pg.db.stores.dead_letters import DeadLetterFilter, DeadLetterStore

    stock: list[int] = []
    calls: list[str] = []

    @app.workflow(name="wf.broken", max_retries=1, retry_backoff=0.1, retry_jitter=False)
    async def broken(ctx: WorkflowContext) -> int:
        await ctx.step("ok", lambda: calls.append("ok"))
        if not stock:
            raise RuntimeError("out of stock")
        shipped: int = await ctx.step("ship", lambda: stock.pop())
        return shipped

    with running_worker(app):
        run = app.start_workflow("wf.broken")
        with pytest.raises(WorkflowFailed, match="out of stock"):
            run.get(timeout=15)
        assert [s["step"] for s in run.steps()] == ["ok"]
        stock.append(9)
        with app.pool.connection() as conn:
            replayed = DeadLetterStore(app.queries).replay(conn, where=DeadLetterFilter())
        assert replayed == [f"{run.id}.0"]
        assert run.get(timeout=15) == 9
    assert calls == ["ok"]  # the first step was not run again


def test_rewind_runs_again_from_a_step(app: Stem) -> None:
    calls: list[str] = []

    @app.workflow(name="wf.redo")
    async def redo(ctx: WorkflowContext) -> int:
        await ctx.step("a", lambda: calls.append("a"))
        await ctx.step("b", lambda: calls.append("b"))
        return len(calls)

    with running_worker(app):
        run = app.start_workflow("wf.redo")
        assert run.get(timeout=10) == 2
        assert app.rewind_workflow(run.id, "b") == 1
        wait_for(lambda: _status(app, run.id) == "completed" and len(calls) == 3)
    assert calls == ["a", "b", "b"]
    with pytest.raises(WorkflowError, match="no checkpoint 'zz'"):
        app.rewind_workflow(run.id, "zz")


def test_max_suspended_time_cancels_a_waiting_run(app: Stem) -> None:
    @app.workflow(name="wf.patient", max_suspended_time=1)
    async def patient(ctx: WorkflowContext) -> None:
        await ctx.await_event("late")

    with running_worker(app):
        run = app.start_workflow("wf.patient")
        with pytest.raises(WorkflowCancelled, match="max_suspended_time"):
            run.get(timeout=10)


def test_bad_workflow_input_is_refused(app: Stem) -> None:
    with pytest.raises(WorkflowError, match="must be an 'async def'"):

        @app.workflow(name="wf.sync")  # type: ignore[arg-type]
        def sync_flow(ctx: WorkflowContext) -> None: ...

    with pytest.raises(WorkflowError, match="max_run_time"):

        @app.workflow(name="wf.bad_limit", max_run_time="5x")
        async def bad_limit(ctx: WorkflowContext) -> None: ...

    @app.workflow(name="wf.fine")
    async def fine(ctx: WorkflowContext) -> None: ...

    with pytest.raises(WorkflowError, match="params must be a JSON object"):
        app.start_workflow("wf.fine", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(WorkflowError, match=r"params do not fit .*unexpected keyword argument 'colour'"):
        app.start_workflow("wf.fine", {"colour": "red"})
    with pytest.raises(WorkflowError, match="topic"):
        app.emit("")


async def test_ended_canvases_and_runs_are_pruned_after_their_retention(app: Stem, database_url: str) -> None:
    from stem_pg import group
    from stem_pg.db.stores.workflows import WorkflowStore

    @app.workflow(name="wf.done")
    async def done(ctx: WorkflowContext) -> None: ...

    @app.task(name="wf.noop")
    def noop() -> None: ...

    with running_worker(app):
        old_run, new_run = app.start_workflow("wf.done"), app.start_workflow("wf.done")
        old_group = group([noop.s()]).delay()
        old_run.get(timeout=10), new_run.get(timeout=10), old_group.get(timeout=10)
    ns = app.namespace
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            f"UPDATE \"{ns}\".wf_runs SET finished_at = now() - interval '2 days' WHERE id = %s",
            [old_run.id],
        )
        await conn.execute(f"UPDATE \"{ns}\".canvases SET finished_at = now() - interval '2 days'")
        assert await WorkflowStore(app.queries, retention=86400).prune(conn) == 2
        cur = await conn.execute(f'SELECT id FROM "{ns}".wf_runs')
        assert await cur.fetchall() == [(new_run.id,)]
        cur = await conn.execute(f'SELECT count(*) FROM "{ns}".canvas_members')
        assert await cur.fetchone() == (0,)
