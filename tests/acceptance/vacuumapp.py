"""The application of the vacuum acceptance test: one task that does nothing, so that the
jobs table's churn (two dead row versions per job) is all the load there is.

Worker subprocesses load it with ``--app tests.acceptance.vacuumapp:app``.
"""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig


def make_app(url: str | None, namespace: str | None) -> Stem:
    stem = Stem(url, namespace=namespace, config=StemConfig())

    @stem.task(name="vac.noop")
    def noop() -> None:
        """Nothing: the job's claim and finish are the work."""

    return stem


app = (
    make_app(os.environ["STEM_BROKER_URL"], os.environ.get("STEM_NAMESPACE"))
    if os.environ.get("STEM_BROKER_URL")
    else None
)
