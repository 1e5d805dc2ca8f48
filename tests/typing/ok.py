"""Calls that type-check (mypy --strict, tests/unit/test_typing.py): the typed task API."""

from __future__ import annotations

from typing import Any

from stem_pg import Stem, TaskContext
from stem_pg.client.results import TaskResult
from stem_pg.client.tasks import AsyncTask, SyncTask, Task, TaskCall
from stem_pg.client.workflows import WorkflowRun

app = Stem("postgresql://localhost/x", namespace="typing")


@app.task
def add(x: int, y: int = 0) -> int:
    return x + y


@app.task(name="email.send", queue="default", max_retries=5)
def send_email(to: str, subject: str) -> str:
    return "sent"


@app.task(priority=7)
async def report(day: str) -> dict[str, int]:
    return {day: 42}


@app.task
def with_context(ctx: TaskContext, order_id: int) -> bool:
    ctx.heartbeat()
    return order_id > 0


@app.task
async def async_with_context(ctx: TaskContext, *, user: str) -> list[str]:
    return [user]


@app.workflow(max_run_time="1h")
async def order_flow(ctx: Any, order_id: int) -> str:
    return str(order_id)


def checks() -> None:
    sync_task: SyncTask[[int, int], int] = add
    async_task: AsyncTask[[str], dict[str, int]] = report
    plain: Task[[int], bool] = with_context
    total: int = add(1, 2)  # a plain call runs the function
    handle: TaskResult[int] = add.enqueue(1, y=2)
    value: int = handle.get(timeout=5)
    maybe: int | None = handle.get(propagate=False)
    sent: str = send_email.delay("a@example.com", subject="hi").get()
    later = send_email.options(countdown=30, queue="mail", priority=3)
    assert isinstance(later, TaskCall)
    mailed: TaskResult[str] = later.enqueue(to="a@example.com", subject="hi")
    send_email.options(task_id="welcome-1").delay("a@example.com", "hi")
    ok: bool = with_context.enqueue(order_id=3).get()
    days: dict[str, int] = report.enqueue("2026-12-01").get()
    signature = add.s(x=1).set(queue="default")
    run: WorkflowRun[str] = order_flow.start(order_id=7)
    run_result: str = run.get(timeout=1)
    untyped: Any = app.enqueue("email.send", {"to": "a@example.com"}).get()
    print(
        sync_task,
        async_task,
        plain,
        total,
        value,
        maybe,
        sent,
        mailed,
        ok,
        days,
        signature,
        run_result,
        untyped,
    )


async def async_checks() -> None:
    handle = await async_with_context.aenqueue(user="ann")
    users: list[str] = await handle.wait()
    coroutine_result: dict[str, int] = await report("2026-12-01")
    queued = await send_email.options(priority=1).aenqueue("b@example.com", "yo")
    print(users, coroutine_result, queued)
