"""A worker application that starts, with the worker, a task swallowing every cancel it gets
(code that catches ``CancelledError`` and carries on): the worker process must exit anyway.
Loaded by worker processes as ``--app tests.acceptance.stubbornapp:app``."""

from __future__ import annotations

import asyncio
import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.signals import WorkerInfo

#: The task's name, which the worker's last log lines quote.
TASK_NAME = "stubborn-forever"

_tasks: set[asyncio.Task[None]] = set()


async def _forever() -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue  # swallowed, every time


def make_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="stubborn.noop")
    def noop() -> None:
        return None

    @stem.signals.worker_started.connect
    async def start(_info: WorkerInfo) -> None:
        _tasks.add(asyncio.get_running_loop().create_task(_forever(), name=TASK_NAME))

    return stem


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
