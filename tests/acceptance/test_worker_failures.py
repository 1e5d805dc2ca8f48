"""Jobs that cannot succeed: unregistered task names, handlers that always raise, and
jobs that expire before a worker gets to them."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, query, scalar
from tests.helpers import wait_for


def result_of(db: psycopg.Connection[Any], ns: str, task_id: str) -> tuple[Any, ...] | None:
    rows = query(db, ns, "SELECT state, error, attempts FROM {ns}.results WHERE id = %s", [task_id])
    return rows[0] if rows else None


def wait_result(
    db: psycopg.Connection[Any], ns: str, task_id: str, workers: Workers, timeout: float = 20
) -> Any:
    return wait_for(
        lambda: result_of(db, ns, task_id), timeout, f"task {task_id} to finish\n{workers.logs()}"
    )


def dead_letters(db: psycopg.Connection[Any], ns: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db, ns, "SELECT reason, error, attempts, errors FROM {ns}.dead_letters WHERE task_id = %s", [task_id]
    )


@pytest.mark.timeout(60)
def test_with_claim_unregistered_an_unregistered_task_is_dead_lettered(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    workers.start(extra=["--claim-unregistered"])
    job = stem.enqueue("acc.nobody_registers_this", {"x": 1})
    state, error, attempts = wait_result(db, namespace, job.id, workers)
    assert state == "failed"
    assert "not registered" in error
    assert attempts == 1
    [(reason, _, dead_attempts, _)] = dead_letters(db, namespace, job.id)
    assert (reason, dead_attempts) == ("unregistered_task", 1)
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0


@pytest.mark.timeout(60)
def test_always_failing_task_retries_with_backoff_then_dead_letters(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    # acc.fail_always: max_retries=2, retry_backoff=0.2, no jitter -> waits 0.2 s then 0.4 s.
    # A short poll interval keeps the claim latency well below the difference.
    workers.start(poll_interval=0.05)
    job = stem.enqueue("acc.fail_always")
    state, error, attempts = wait_result(db, namespace, job.id, workers)
    assert (state, attempts) == ("failed", 3)
    assert error == "RuntimeError: boom on attempt 3"

    runs = query(
        db, namespace, "SELECT attempt, at FROM {ns}.ledger WHERE task_id = %s ORDER BY at", [job.id]
    )
    assert [a for a, _ in runs] == [1, 2, 3]
    gaps = [(b[1] - a[1]).total_seconds() for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.2, gaps
    assert gaps[1] >= 0.4, gaps
    assert gaps[1] > gaps[0], gaps

    [(reason, dead_error, dead_attempts, history)] = dead_letters(db, namespace, job.id)
    assert (reason, dead_attempts) == ("max_retries_exceeded", 3)
    assert dead_error == "RuntimeError: boom on attempt 3"
    assert [(h["attempt"], h["error"]) for h in history] == [
        (k, f"RuntimeError: boom on attempt {k}") for k in (1, 2, 3)
    ]
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0


@pytest.mark.timeout(60)
def test_job_not_due_before_it_expires_is_cancelled_unrun(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    workers.start()
    job = stem.enqueue("acc.step", {"n": 1}, countdown=2, expires=1)
    state, error, _ = wait_result(db, namespace, job.id, workers)
    assert state == "cancelled"
    assert "expired" in error
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [job.id]) == 0
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == 0


@pytest.mark.timeout(60)
def test_job_that_expires_while_waiting_for_a_slot_is_cancelled_unrun(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    # One slot, two leased jobs (prefetch): the second waits in the worker behind a
    # 1.5 s task, past its 0.5 s expiry.
    workers.start(concurrency=1)
    blocker = stem.enqueue("acc.step", {"n": 0, "sleep": 1.5})
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [blocker.id]),
        15,
        "the blocking task to start",
    )
    job = stem.enqueue("acc.step", {"n": 1}, expires=0.5)
    wait_for(
        lambda: scalar(db, namespace, "SELECT state FROM {ns}.jobs WHERE id = %s", [job.id]) == "running",
        5,
        "the worker to lease the second job",
    )
    state, error, _ = wait_result(db, namespace, job.id, workers)
    assert state == "cancelled"
    assert "expired" in error
    assert result_of(db, namespace, blocker.id)[0] == "succeeded"  # type: ignore[index]
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [job.id]) == 0
