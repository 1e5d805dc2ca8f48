"""Enqueue, claim, run and record results against a real Postgres."""

from __future__ import annotations

import asyncio

import pytest

from stem_pg.client.app import Stem
from stem_pg.core.errors import TaskFailed
from stem_pg.testing import run_until_idle
from tests.helpers import running_worker


def test_sync_and_async_tasks_complete(app: Stem) -> None:
    @app.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="math.mul")
    async def mul(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x * y

    first = app.enqueue("math.add", {"x": 2, "y": 3})
    second = mul.enqueue(x=4, y=5)
    outcomes = run_until_idle(app)
    assert sorted((o.task, o.state, o.result) for o in outcomes) == [
        ("math.add", "succeeded", 5),
        ("math.mul", "succeeded", 20),
    ]
    assert (first.get(timeout=1), second.get(timeout=1)) == (5, 20)
    assert first.state == "succeeded"


def test_failure_is_retried_then_dead_lettered(app: Stem, db) -> None:  # type: ignore[no-untyped-def]
    calls = []

    @app.task(name="flaky", max_retries=2, retry_backoff=0.05, retry_jitter=False)
    def flaky() -> None:
        calls.append(1)
        raise ValueError("boom")

    result = app.enqueue("flaky")
    (outcome,) = run_until_idle(app, with_scheduled=True)  # the retries, without their backoff
    assert (outcome.state, outcome.attempt, outcome.error) == ("failed", 3, "ValueError: boom")
    with pytest.raises(TaskFailed, match="boom"):
        result.get(timeout=1)
    assert len(calls) == 3
    row = db.execute(
        f'SELECT reason, attempts, jsonb_array_length(errors) FROM "{app.namespace}".dead_letters'
    ).fetchone()
    assert row == ("max_retries_exceeded", 3, 3)


def test_a_cancelled_claim_keeps_its_connection(app: Stem, database_url: str) -> None:
    """A statement cancelled on the server (a DBA, a statement or lock timeout) is not a lost
    connection: the claim loop goes on with the same backend, and jobs still run."""
    import psycopg
    from psycopg import sql

    from tests.helpers import wait_for

    @app.task(name="after_cancel")
    def after_cancel() -> str:
        return "ran"

    with running_worker(app, poll_interval=0.05) as worker, psycopg.connect(database_url) as blocker:
        # The connections are made inside the worker's loop, once it runs (another thread).
        wait_for(lambda: getattr(worker, "conns", None) is not None and worker.conns.claim.backend_pid)
        pid = worker.conns.claim.backend_pid
        blocker.execute(sql.SQL("LOCK TABLE {}.jobs").format(sql.Identifier(app.namespace)))
        waiting = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s"
        with psycopg.connect(database_url, autocommit=True) as admin:
            wait_for(lambda: admin.execute(waiting, (pid,)).fetchone() == (True,))
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
            blocker.rollback()
        assert app.enqueue("after_cancel").get(timeout=10) == "ran"
        assert worker.conns.claim.backend_pid == pid
