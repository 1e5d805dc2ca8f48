"""The application of the control-plane acceptance tests: broadcast channels and long tasks.

Worker subprocesses load it with ``--app tests.acceptance.controlapp:app``; handlers
write to the ``ledger`` table of ``workerapp`` (create it with ``create_tables``).
"""

from __future__ import annotations

import asyncio
import os
import time

from stem_pg.client.app import Stem
from stem_pg.config.routing_file import load_routing_yaml
from stem_pg.config.settings import StemConfig
from stem_pg.worker.context import TaskContext
from tests.acceptance.workerapp import _log

APP = "tests.acceptance.controlapp:app"

ROUTING = """
broadcasts:
  fleet: {delivery: at-least-once}
  once: {delivery: at-most-once}
routes:
  - match: {task: "fleet.*"}
    target: {type: broadcast, name: fleet}
  - match: {task: "once.*"}
    target: {type: broadcast, name: once}
"""


def make_control_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, routing=load_routing_yaml(ROUTING), config=StemConfig())

    def refresh(ctx: TaskContext, sleep: float = 0.0) -> int:
        """Ledger 'started', sleep, ledger 'finished'; returns the pid."""
        _log(stem, ctx, None, "started")
        time.sleep(sleep)
        _log(stem, ctx, None, "finished")
        return os.getpid()

    stem.task(name="fleet.refresh")(refresh)
    stem.task(name="once.refresh")(refresh)

    @stem.task(name="ctl.forever")
    async def forever(ctx: TaskContext) -> None:
        _log(stem, ctx, None, "started")
        await asyncio.sleep(3600)

    @stem.task(name="ctl.step")
    def step(ctx: TaskContext, sleep: float = 0.0) -> int:
        _log(stem, ctx, None, "started")
        time.sleep(sleep)
        _log(stem, ctx, None, "finished")
        return os.getpid()

    return stem


app = (
    make_control_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
