"""The application of the metrics acceptance tests: a task that succeeds and one that is
rejected (dead-lettered at once). Loaded by worker processes as ``tests.acceptance.metricsapp:app``."""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from stem_pg.core.tasks import Reject


def make_metrics_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="met.add")
    def add(x: int) -> int:
        return x + 1

    @stem.task(name="met.reject")
    def reject() -> None:
        raise Reject("not this one")

    return stem


app = (
    make_metrics_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
