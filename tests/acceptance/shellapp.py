"""The application of the ``stem shell`` tests: ``--app tests.acceptance.shellapp:app``."""

from __future__ import annotations

import os
from typing import Any

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(os.environ["STEM_BROKER_URL"], config=StemConfig())


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="mail.send")
def send_mail(to: str) -> None:
    """Bound as ``send``, the last part of its name."""


@app.task(name="reports.2024")
def yearly() -> None:
    """No identifier: reachable as ``tasks["reports.2024"]`` only."""


@app.workflow(name="onboard")
async def onboard(ctx: Any, user: str) -> str:
    return user
