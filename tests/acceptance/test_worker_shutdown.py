"""SIGTERM: a running task finishes, leased-but-unstarted jobs go back untouched; a
second SIGTERM stops at once and the interrupted job runs again elsewhere."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.workerapp import Workers, query, scalar, wait_registered, worker_pid
from tests.helpers import wait_for


def events(db: psycopg.Connection[Any], ns: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db, ns, "SELECT event, pid, attempt FROM {ns}.ledger WHERE task_id = %s ORDER BY at", [task_id]
    )


def live(db: psycopg.Connection[Any], ns: str, ids: list[str]) -> list[tuple[Any, ...]]:
    return query(
        db,
        ns,
        "SELECT id, state, attempts, worker_id, lease_token FROM {ns}.jobs WHERE id = ANY(%s) ORDER BY seq",
        [ids],
    )


def results(db: psycopg.Connection[Any], ns: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = query(db, ns, "SELECT id, state, attempts, worker_id FROM {ns}.results WHERE id = ANY(%s)", [ids])
    return {r[0]: r[1:] for r in rows}


@pytest.mark.timeout(60)
def test_sigterm_finishes_running_task_and_releases_unstarted_jobs(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(concurrency=1, extra=["--prefetch-multiplier", "3"])
    wait_registered(db, namespace, {first.pid})
    running = stem.enqueue("acc.step", {"n": 0, "sleep": 1.5})
    wait_for(lambda: events(db, namespace, running.id), 15, "the long task to start")
    waiting = [r.id for r in stem.enqueue_many(EnqueueRequest("acc.step", {"n": n}) for n in (1, 2))]
    wait_for(
        lambda: (
            [(s, worker_pid(w)) for _, s, _, w, _ in live(db, namespace, waiting)]
            == [("running", first.pid)] * 2
        ),
        5,
        "the worker to lease the two waiting jobs",
    )
    assert events(db, namespace, running.id) == [("started", first.pid, 1)], (
        "too late: the task already ended"
    )

    first.signal(signal.SIGTERM)
    sent = time.monotonic()
    code = first.wait(timeout=15)
    assert code == 0, first.log()
    assert time.monotonic() - sent < 5, "a graceful stop waits for the running task only"

    state, attempts, worker_id = results(db, namespace, [running.id])[running.id]
    assert (state, attempts, worker_pid(worker_id)) == ("succeeded", 1, first.pid)
    assert events(db, namespace, running.id) == [("started", first.pid, 1), ("finished", first.pid, 1)]
    # Released: queued again, the attempt not counted, no lease, never run.
    assert [r[1:] for r in live(db, namespace, waiting)] == [("queued", 0, None, None)] * 2
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = ANY(%s)", [waiting]) == 0
    assert scalar(
        db, namespace, "SELECT stopped_at IS NOT NULL FROM {ns}.workers WHERE pid = %s", [first.pid]
    )

    second = workers.start(concurrency=1)
    wait_for(
        lambda: len(results(db, namespace, waiting)) == 2, 20, f"the released jobs to run\n{workers.logs()}"
    )
    done = results(db, namespace, waiting)
    assert [(done[i][0], done[i][1], worker_pid(done[i][2])) for i in waiting] == [
        ("succeeded", 1, second.pid)
    ] * 2


@pytest.mark.timeout(60)
def test_second_sigterm_forces_exit_and_job_is_retried_elsewhere(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(concurrency=1)
    wait_registered(db, namespace, {first.pid})
    job = stem.enqueue("acc.step", {"sleeps": [60, 0]})
    wait_for(lambda: events(db, namespace, job.id), 15, "the long task to start")

    first.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert first.alive(), "the first SIGTERM should wait for the running task"
    first.signal(signal.SIGTERM)
    forced = time.monotonic()
    try:
        first.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker ignored the second SIGTERM\n{first.log()}")
    assert time.monotonic() - forced < 3, first.log()
    assert first.popen.returncode != 0

    second = workers.start(concurrency=1)
    wait_for(lambda: results(db, namespace, [job.id]), 30, f"the job to run again\n{workers.logs()}")
    state, attempts, worker_id = results(db, namespace, [job.id])[job.id]
    assert (state, attempts, worker_pid(worker_id)) == ("succeeded", 2, second.pid)
    assert events(db, namespace, job.id) == [
        ("started", first.pid, 1),
        ("started", second.pid, 2),
        ("finished", second.pid, 2),
    ]
