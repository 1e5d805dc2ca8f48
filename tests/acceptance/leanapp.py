"""An application that imports nothing but stem_pg (``test_worker_lean``: what the worker adds)."""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(os.environ.get("STEM_BROKER_URL"), config=StemConfig())


@app.task(name="lean.noop")
def noop() -> None:
    """Does nothing."""
