"""The application module of the workflow and canvas acceptance tests.

Worker subprocesses load it with ``--app tests.acceptance.wfapp:app``. Steps and
callbacks write to the ``ledger`` table of ``workerapp.create_tables`` (task_id is
the run id, ``n`` the step number), on their own connection, so a test can tell
exactly which process ran what, and how often.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows import EventTimeout, WorkflowContext
from tests.acceptance.workerapp import _ledger_conn, _table


def _note(stem: Stem, key: str, n: int | None, attempt: int, event: str) -> None:
    _ledger_conn(stem.url).execute(
        sql.SQL("INSERT INTO {} (task_id, n, pid, attempt, event) VALUES (%s, %s, %s, %s, %s)").format(
            _table(stem, "ledger")
        ),
        (key, n, os.getpid(), attempt, event),
    )


def make_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.workflow(name="acc.five_steps")
    async def five_steps(ctx: WorkflowContext, hold: float = 0.0) -> list[int]:
        done = []
        for n in range(1, 6):

            def work(n: int = n) -> int:
                _note(stem, ctx.run_id, n, ctx.task.attempt, "step")
                if n == 4 and ctx.task.attempt == 1:
                    time.sleep(hold)  # the test kills the worker here
                return n

            done.append(await ctx.step(f"step-{n}", work))
        return done

    @stem.workflow(name="acc.nap")
    async def nap(ctx: WorkflowContext, seconds: float) -> str:
        await ctx.step("before", lambda: _note(stem, ctx.run_id, 1, ctx.task.attempt, "before"))
        await ctx.sleep(seconds)
        await ctx.step("after", lambda: _note(stem, ctx.run_id, 2, ctx.task.attempt, "after"))
        return "rested"

    @stem.workflow(name="acc.approval")
    async def approval(ctx: WorkflowContext, timeout: float) -> Any:
        try:
            return await ctx.await_event("approvals", timeout=timeout)
        except EventTimeout:
            return "timed out"

    @stem.task(name="acc.quick")
    def quick() -> int:
        return os.getpid()

    @stem.task(name="acc.member")
    def member(n: int) -> int:
        time.sleep(random.uniform(0, 0.02))
        return n

    @stem.task(name="acc.gather")
    def gather(ctx: TaskContext, results: list[int]) -> list[int]:
        _note(stem, ctx.task_id, len(results), ctx.attempt, "callback")
        return results

    return stem


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
