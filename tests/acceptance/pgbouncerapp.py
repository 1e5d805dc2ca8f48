"""The application of the PgBouncer tests (tests/acceptance/test_pgbouncer.py): worker and
beat processes load it with ``--app tests.acceptance.pgbouncerapp:app`` and reach the
database through a transaction-mode PgBouncer (STEM_BROKER_URL ends in
``?stem_pooler=transaction``)."""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows import WorkflowContext


def make_pgbouncer_app(url: str | None, namespace: str | None, direct_url: str | None = None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig(), direct_url=direct_url)

    @stem.task(name="pgb.add")
    def add(a: int, b: int) -> int:
        return a + b

    @stem.task(name="pgb.flaky", max_retries=3, retry_backoff=0.1, retry_jitter=False)
    def flaky(ctx: TaskContext, fails: int) -> int:
        """Fails its first ``fails`` attempts; returns the attempt that succeeded."""
        if ctx.attempt <= fails:
            raise RuntimeError(f"failing attempt {ctx.attempt} on purpose")
        return ctx.attempt

    @stem.task(name="pgb.locked")
    def locked(key: str) -> int:
        """Holds ``app.lock(key)`` (a row lock with a fencing token) while it runs."""
        with stem.lock(key, ttl=10, wait=10) as lock:
            return lock.token

    @stem.task(name="pgb.tick")
    def tick() -> str:
        return "tick"

    @stem.workflow(name="pgb.flow")
    async def flow(ctx: WorkflowContext, n: int) -> list[int]:
        first = await ctx.step("first", lambda: n + 1)
        second = await ctx.step("second", lambda: first * 2)
        return [first, second]

    return stem


app = (
    make_pgbouncer_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
