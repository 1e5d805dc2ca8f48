"""The application module of tests/acceptance/test_no_secret_printed.py.

``Stem()`` reads STEM_BROKER_URL, as a user's app does. With ``SECRETS_APP_LOG=1`` the
module also logs what a careless application or library might: the URL itself, a
``key=value`` connection string, and the bare password (``SECRETS_APP_PASSWORD``).
"""

from __future__ import annotations

import logging
import os

from stem_pg.client.app import Stem

app = Stem()

if os.environ.get("SECRETS_APP_LOG") == "1":
    password = os.environ["SECRETS_APP_PASSWORD"]
    chatty = logging.getLogger("secretsapp.settings")
    chatty.warning("database: %s", os.environ["STEM_BROKER_URL"])
    chatty.warning("conninfo: host=db port=5432 password=%s dbname=app", password)
    chatty.warning("the vault returned %r", password)


@app.task(name="secrets.noop")
def noop() -> None:
    """Never runs: the database is never reached."""
