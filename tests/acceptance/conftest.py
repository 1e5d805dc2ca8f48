"""Fixtures of the acceptance tests: worker processes, and the applications they serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.controlapp import make_control_app
from tests.acceptance.workerapp import Workers, ledger_app, make_app


@pytest.fixture
def workers(database_url: str, namespace: str, tmp_path: Path) -> Iterator[Workers]:
    """Start worker processes with ``workers.start()``; all are SIGKILLed afterwards."""
    spawner = Workers(database_url, namespace, tmp_path)
    try:
        yield spawner
    finally:
        spawner.cleanup()


@pytest.fixture
def stem(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[Stem]:
    """The acceptance app on the test namespace, with the ledger and dupes tables created."""
    with ledger_app(make_app, database_url, namespace, db) as application:
        yield application


@pytest.fixture
def capp(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[Stem]:
    """The control-plane app (tests.acceptance.controlapp), with the ledger tables created."""
    with ledger_app(make_control_app, database_url, namespace, db) as application:
        yield application
