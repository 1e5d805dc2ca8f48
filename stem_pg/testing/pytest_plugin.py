"""The pytest plugin (entry point ``stem_pg``): a Postgres, a fresh migrated namespace per
test, and the application bound to it. Every name starts with ``stem_``; nothing runs
unless a test asks for a fixture, so a suite that does not use it pays nothing.

* ``stem_database_url`` (session): ``--stem-database-url``, else the ``stem_database_url``
  ini option, else STEM_TEST_DATABASE_URL, else an embedded server of the session's own
  (stem_pg.dev.embedded, in a temporary directory, stopped and deleted at the end).
* ``stem_namespace``: a new namespace migrated to the head, dropped after the test.
* ``stem_app``: the app named by ``--stem-app`` / the ``stem_app`` ini option
  (``module:attribute``, an app or a function returning one), bound to ``stem_namespace``
  for the test (stem_pg.testing.bound); override the fixture to build it another way.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

URL_HELP = "the Postgres of the stem_* fixtures (else STEM_TEST_DATABASE_URL, else an embedded server)"
APP_HELP = "the app of the stem_app fixture: module:attribute (a Stem, or a function returning one)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stem_pg", "stem_pg fixtures (stem_database_url, stem_namespace, stem_app)")
    group.addoption("--stem-database-url", dest="stem_database_url", default=None, help=URL_HELP)
    group.addoption("--stem-app", dest="stem_app", default=None, help=APP_HELP)
    parser.addini("stem_database_url", URL_HELP, default="")
    parser.addini("stem_app", APP_HELP, default="")


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name) or config.getini(name)
    return str(value) if value else None


@pytest.fixture(scope="session")
def stem_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A Postgres URL for the session (see the module's docstring for where it comes from)."""
    url = _setting(request.config, "stem_database_url") or os.environ.get("STEM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from stem_pg.dev.embedded import EmbeddedPostgres, _free_port

    data_dir = Path(tempfile.mkdtemp(prefix="stem_pg-pytest-"))
    server = EmbeddedPostgres(data_dir / "pg", port=_free_port())
    try:
        yield server.start()
    finally:
        server.stop(force=True)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def stem_namespace(stem_database_url: str) -> Iterator[str]:
    """A fresh namespace, migrated to the head, dropped after the test."""
    from stem_pg.testing.binding import migrated_namespace

    with migrated_namespace(stem_database_url) as name:
        yield name


@pytest.fixture
def stem_app(request: pytest.FixtureRequest) -> Iterator[Stem]:
    """The configured app, bound to ``stem_namespace`` (on ``stem_database_url``) for the test."""
    from stem_pg.testing.binding import bound

    spec = _setting(request.config, "stem_app")
    if spec is None:
        raise pytest.UsageError(
            "the stem_app fixture needs your app: set `stem_app = mypackage.tasks:app` in your pytest"
            " configuration, pass --stem-app, or override the stem_app fixture"
        )
    app = load_app(spec)  # before the database: a wrong name fails at once
    url, namespace = request.getfixturevalue("stem_database_url"), request.getfixturevalue("stem_namespace")
    with bound(app, url, namespace):
        yield app


def load_app(spec: str) -> Stem:
    """``module:attribute``: the app there, or what calling the function there returns."""
    from stem_pg.client.app import Stem

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"stem_app: expected module:attribute, got {spec!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise pytest.UsageError(f"stem_app: {module_name!r} has no attribute {attribute!r}")
    if not isinstance(found, Stem) and callable(found):
        found = found()
    if not isinstance(found, Stem):
        raise pytest.UsageError(f"stem_app: {spec} is not a Stem app (nor a function returning one)")
    return found
