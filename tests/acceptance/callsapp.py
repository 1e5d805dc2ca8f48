"""The application of tests/acceptance/test_calls_cli.py: a task with its own options and
one that reports progress; worker subprocesses load it with ``--app`` APP."""

from __future__ import annotations

import os
import time

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext

APP = "tests.acceptance.callsapp:app"


def make_calls_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="calls.options", priority=7, max_retries=0)
    def options(n: int = 0) -> int:
        return n

    @stem.task(name="calls.progress")
    def progress(ctx: TaskContext, steps: int) -> int:
        """Report ``steps`` progress values, then wait (checkpointing) until revoked or a minute passed."""
        for done in range(1, steps + 1):
            ctx.progress({"done": done, "of": steps})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ctx.heartbeat()
            time.sleep(0.05)
        return steps

    return stem


app = (
    make_calls_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
