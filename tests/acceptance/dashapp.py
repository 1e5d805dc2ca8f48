"""The application of the dashboard's browser tests (``--app tests.acceptance.dashapp:app``).

``dash.ok`` succeeds; ``dash.fail`` fails for good (no retry) unless the file named by
``unless`` exists, so a test can make a replayed job succeed.
"""

from __future__ import annotations

import os
import time

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig


def make_app(url: str | None = None, namespace: str | None = None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="dash.ok")
    def ok(sleep: float = 0.0) -> str:
        time.sleep(sleep)
        return "ok"

    @stem.task(name="dash.fail", max_retries=0)
    def fail(unless: str = "") -> str:
        if unless and os.path.exists(unless):
            return "recovered"
        raise RuntimeError("the dashboard test asked for a failure")

    return stem


app = make_app()
