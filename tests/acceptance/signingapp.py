"""The application of the payload-signing acceptance tests (``--app tests.acceptance.signingapp:app``).

The worker's keys come from STEM_SIGNING_KEYS / STEM_SIGNING_ACTIVE_KEY, as in
production; the tests' producers build the same app with ``make_signing_app``
and keys of their own. Handlers write a ledger row (tests.acceptance.workerapp's
tables), which is how a test knows that a job ran.
"""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.signing import Signing
from stem_pg.worker.context import TaskContext
from stem_pg.worker.workflows.context import WorkflowContext
from tests.acceptance.workerapp import _log


def make_signing_app(url: str | None, namespace: str | None, signing: Signing | None) -> Stem:
    """The signing tests' tasks on an app that signs (and verifies) with ``signing``."""
    stem = Stem(url, namespace=namespace, config=StemConfig(), signing=signing)

    @stem.task(name="sig.record")
    def record(ctx: TaskContext, n: int | None = None, **extra: object) -> int | None:
        _log(stem, ctx, n, "ran")
        return n

    @stem.task(name="sig.add")
    def add(ctx: TaskContext, n: int, prev: int = 0) -> int:
        """For chains: the previous result arrives as ``prev``."""
        _log(stem, ctx, n + prev, "ran")
        return n + prev

    @stem.workflow(name="sig.child")
    async def child(ctx: WorkflowContext, n: int) -> int:
        return n * 2

    @stem.workflow(name="sig.flow")
    async def flow(ctx: WorkflowContext, n: int) -> int:
        """Resumed by jobs that the database and the worker write (after the sleep, after
        the child): unsigned by design, accepted by their shape."""
        first = await ctx.step("first", _plus_one, n)
        await ctx.sleep(0.2)
        return int(await ctx.child("sig.child", {"n": first}))

    return stem


def _plus_one(n: int) -> int:
    return n + 1


app = (
    make_signing_app(
        os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"), StemConfig.from_environment().signing
    )
    if os.environ.get("STEM_BROKER_URL")
    else None
)
