"""The application of the beat acceptance tests: ``--app tests.acceptance.beatapp:app``.

Beat only needs the app for routing and task options; no worker runs, so the
jobs it enqueues stay in ``jobs`` for the test to count.
"""

from __future__ import annotations

import os

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(os.environ["STEM_BROKER_URL"], config=StemConfig())
