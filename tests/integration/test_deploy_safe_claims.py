"""Deploy-safe claiming: a worker claims only the task names it registers, so during a rolling
deploy an older worker leaves a task only the newer release has to a newer worker;
``claim_unregistered`` restores the catch-all that dead-letters them (``unregistered_task``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.config.settings import StemConfig
from tests.helpers import running_worker, wait_for


@pytest.fixture
def newer(database_url: str, namespace: str) -> Iterator[Stem]:
    """The next release of ``app``: it also has the task ``deploy.added``."""
    stem = Stem(database_url, namespace=namespace, config=StemConfig())
    yield stem
    stem.close()


def rows(db: psycopg.Connection[Any], namespace: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql.SQL(query).format(ns=sql.Identifier(namespace)), params).fetchall()


def register_both(older: Stem, newer: Stem) -> None:
    for stem in (older, newer):
        stem.task(name="deploy.kept")(lambda: "kept")
    newer.task(name="deploy.added")(lambda n: n * 2)


def test_an_older_worker_leaves_a_new_task_queued_for_a_newer_worker(
    app: Stem, newer: Stem, db: psycopg.Connection[Any], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    register_both(app, newer)
    added = newer.enqueue("deploy.added", {"n": 21})
    kept = newer.enqueue("deploy.kept")
    with caplog.at_level(logging.WARNING, logger="stem_pg.worker"), running_worker(app):
        assert kept.get(timeout=10) == "kept"  # one claim saw both jobs, and took only this one
        assert rows(db, namespace, "SELECT state, attempts FROM {ns}.jobs WHERE id = %s", added.id) == [
            ("queued", 0)
        ]
    assert rows(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == [(0,)]
    assert any(
        "1 jobs wait for tasks this worker does not register: deploy.added (1)" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    with running_worker(newer):
        assert added.get(timeout=10) == 42


def test_claim_unregistered_dead_letters_a_task_the_worker_does_not_have(
    app: Stem, newer: Stem, db: psycopg.Connection[Any], namespace: str
) -> None:
    register_both(app, newer)
    added = newer.enqueue("deploy.added", {"n": 21})
    with running_worker(app, claim_unregistered=True):
        wait_for(lambda: rows(db, namespace, "SELECT reason FROM {ns}.dead_letters"), what="a dead letter")
    assert rows(db, namespace, "SELECT task_id, reason FROM {ns}.dead_letters") == [
        (added.id, "unregistered_task")
    ]
    assert rows(db, namespace, "SELECT count(*) FROM {ns}.jobs") == [(0,)]
