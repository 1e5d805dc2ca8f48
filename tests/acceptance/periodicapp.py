"""The application of the ``@app.periodic`` acceptance test: ``--app tests.acceptance.periodicapp:app``.

``tick`` fires every second (``@app.periodic`` above ``@app.task``); ``nightly`` is declared
below ``@app.task`` and only stored (02:00 Paris time is not awaited).
"""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(os.environ["STEM_BROKER_URL"], config=StemConfig())


@app.periodic(every="1s", name="tick", kwargs={"note": "from code"})
@app.task(name="periodic.tick")
def tick(note: str) -> str:
    return note


@app.task(name="periodic.nightly")
@app.periodic(cron="0 2 * * *", timezone="Europe/Paris", name="nightly")
def nightly() -> None:
    """Stored by beat beside the file's entries; not run by the test."""
