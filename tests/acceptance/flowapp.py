"""The application of the limits tests with real worker processes
(tests/acceptance/test_worker_flow_limits.py): ``flow.slot`` may run once at a time across
the namespace; it writes 'started' and 'finished' to the ledger of
tests/acceptance/workerapp.py, and sleeps ``sleeps[attempt - 1]`` seconds in between."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from tests.acceptance.workerapp import _log


def make_flow_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="flow.slot", concurrency_limit=1)
    def slot(ctx: TaskContext, n: int, sleeps: Sequence[float] = ()) -> int:
        _log(stem, ctx, n, "started")
        if ctx.attempt <= len(sleeps):
            time.sleep(sleeps[ctx.attempt - 1])
        _log(stem, ctx, n, "finished")
        return n

    return stem


app = (
    make_flow_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
