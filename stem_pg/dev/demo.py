"""``stem demo``: the whole loop on a real Postgres, in one process, in a few seconds."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.canvas import chord
from stem_pg.core.tasks import Retry
from stem_pg.db.connect import connection
from stem_pg.db.queries import queries_for
from stem_pg.db.stores.tasks import database_now, state_counts
from stem_pg.schema.migrate import migrate
from stem_pg.worker import Worker, WorkerSettings
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows import WorkflowContext

DEMO_NAMESPACE = "demo"


def build_demo_app(url: str | None = None, namespace: str | None = None) -> Stem:
    app = Stem(url, namespace=namespace, config=StemConfig())

    @app.task(name="demo.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="demo.greet")
    async def greet(name: str) -> str:
        await asyncio.sleep(0.05)
        return f"hello, {name}"

    @app.task(name="demo.flaky", max_retries=3, retry_backoff=0.2, retry_jitter=False)
    def flaky(ctx: TaskContext) -> str:
        if ctx.attempt < 2:
            raise Retry(countdown=0.2, exc=RuntimeError("first attempt always fails"))
        return f"succeeded on attempt {ctx.attempt}"

    @app.task(name="demo.square")
    def square(x: int) -> int:
        return x * x

    @app.task(name="demo.total")
    def total(results: list[int]) -> int:
        return sum(results)

    @app.workflow(name="demo.signup")
    async def signup(ctx: WorkflowContext, user: str) -> str:
        account = await ctx.step("create-account", lambda: f"acct-{user}")
        await ctx.sleep(0.5)  # durable: the run holds no worker while it sleeps
        mail = await ctx.step("send-welcome", lambda: f"welcome mail sent to {user}")
        return f"{account}, {mail}"

    return app


def run_demo(url: str, namespace: str = DEMO_NAMESPACE, say: Callable[[str], Any] = print) -> bool:
    """Migrate, enqueue a few tasks, run a worker until they finish, report. True if all succeeded."""
    say(f"migrating namespace {namespace!r} ...")
    migrate(url, namespace)
    with connection(url, role="demo") as conn:
        since = database_now(conn)  # the counts at the end are of this run's jobs only
    app = build_demo_app(url, namespace)
    handles = {
        "demo.add(2, 3)": app.enqueue("demo.add", {"x": 2, "y": 3}),
        "demo.greet('stem')": app.enqueue("demo.greet", {"name": "stem"}, priority=9),
        "demo.flaky()": app.enqueue("demo.flaky"),
    }
    batch = app.enqueue_many([("demo.add", {"x": i, "y": random.randint(0, 9)}) for i in range(100)])
    squares = chord([app.signature("demo.square", x=i) for i in range(10)], app.signature("demo.total"))
    canvas = app.apply(squares)
    run = app.start_workflow("demo.signup", {"user": "ada"})
    say(f"enqueued {len(handles) + len(batch)} tasks, a chord of 10 and a workflow; starting a worker ...")
    worker = Worker(app, WorkerSettings(queues=("default",), concurrency=8, poll_interval=0.2))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    started = time.monotonic()
    thread.start()
    ok = True
    try:
        for label, handle in handles.items():
            value = handle.get(timeout=30)
            say(f"  {label:<20} -> {value!r}")
        total = sum(h.get(timeout=30) for h in batch)
        say(f"  100 x demo.add        -> sum {total}")
        say(f"  chord(10 x demo.square, demo.total) -> {canvas.get(timeout=30)!r}")
        say(f"  workflow demo.signup  -> {run.get(timeout=30)!r} ({len(run.steps())} checkpoints)")
    except Exception as exc:
        say(f"demo failed: {exc}")
        ok = False
    finally:
        loop.call_soon_threadsafe(worker.request_stop)
        thread.join(timeout=30)
        app.close()
    say(f"done in {time.monotonic() - started:.2f}s. Job state is plain SQL (this run's jobs):")
    say(f'  SELECT state, count(*) FROM "{namespace}".task_states')
    say(f"  WHERE enqueued_at >= '{since.isoformat()}' GROUP BY state;")
    with connection(url, role="demo") as conn:
        for row in state_counts(conn, queries_for(namespace), since=since):
            say(f"    {row.state:<10} {row.count}")
    return ok
