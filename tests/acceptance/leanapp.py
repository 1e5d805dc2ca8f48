"""An application that imports nothing but stem_pg (``test_worker_lean``: what the worker adds)."""

from __future__ import annotations

import os
import subprocess

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig

app = Stem(os.environ.get("STEM_BROKER_URL"), config=StemConfig())


@app.task(name="lean.noop")
def noop() -> None:
    """Does nothing."""


@app.task(name="lean.environment")
def environment() -> list[str]:
    """The names of the variables a subprocess of task code inherits."""
    listing = subprocess.run(["env", "-0"], check=True, capture_output=True).stdout
    return sorted(entry.split(b"=", 1)[0].decode() for entry in listing.split(b"\0") if entry)
