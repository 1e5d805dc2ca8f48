"""Worker processes that die (SIGKILL) or freeze (SIGSTOP) mid-task: the lease expires,
another worker runs the job, and it completes exactly once."""

from __future__ import annotations

import signal
import time
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, query, scalar, wait_registered, worker_pid
from tests.helpers import wait_for

LEASE = 2.0
# The rescuer runs every maintenance_interval (5 s, +-20 %) after the lease expires.
RESCUE_WAIT = 30.0


def ledger(db: psycopg.Connection[Any], ns: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db, ns, "SELECT event, pid, attempt, at FROM {ns}.ledger WHERE task_id = %s ORDER BY at", [task_id]
    )


def started_by(db: psycopg.Connection[Any], ns: str, task_id: str, pid: int) -> bool:
    return any(e == "started" and p == pid for e, p, _, _ in ledger(db, ns, task_id))


def results(db: psycopg.Connection[Any], ns: str, task_id: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        ns,
        "SELECT state, attempts, worker_id, result, finished_at FROM {ns}.results WHERE id = %s",
        [task_id],
    )


@pytest.mark.timeout(60)
def test_sigkilled_worker_job_runs_again_after_lease_and_completes_once(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(lease=LEASE, concurrency=2, real_process=True)  # the others are forked
    wait_registered(db, namespace, {first.pid})
    job = stem.enqueue("acc.step", {"sleeps": [60, 0.2]})
    wait_for(lambda: started_by(db, namespace, job.id, first.pid), 15, "the first worker to start the job")

    first.signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert scalar(db, namespace, "SELECT state FROM {ns}.jobs WHERE id = %s", [job.id]) == "running"

    second = workers.start(lease=LEASE, concurrency=2)
    wait_for(lambda: results(db, namespace, job.id), RESCUE_WAIT, f"the job to finish\n{workers.logs()}")

    rows = results(db, namespace, job.id)
    assert len(rows) == 1
    state, attempts, worker_id, value, _ = rows[0]
    assert (state, attempts) == ("succeeded", 2)
    assert worker_pid(worker_id) == second.pid
    assert value == {"pid": second.pid, "attempt": 2}

    events = ledger(db, namespace, job.id)
    assert [(e, p, a) for e, p, a, _ in events] == [
        ("started", first.pid, 1),
        ("started", second.pid, 2),
        ("finished", second.pid, 2),
    ]
    # The second run waited for the lease to expire (heartbeats only push it further).
    assert (events[1][3] - events[0][3]).total_seconds() >= LEASE
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == 0


@pytest.mark.timeout(60)
def test_frozen_worker_loses_lease_and_its_late_completion_is_rejected(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    frozen = workers.start(lease=LEASE, concurrency=2)
    wait_registered(db, namespace, {frozen.pid})
    job = stem.enqueue("acc.step", {"sleeps": [3, 0.2]})
    wait_for(lambda: started_by(db, namespace, job.id, frozen.pid), 15, "the first worker to start the job")

    frozen.signal(signal.SIGSTOP)
    try:
        second = workers.start(lease=LEASE, concurrency=2)
        wait_for(lambda: results(db, namespace, job.id), RESCUE_WAIT, f"the job to finish\n{workers.logs()}")
        before = results(db, namespace, job.id)
        assert len(before) == 1
        state, attempts, worker_id, value, _ = before[0]
        assert (state, attempts) == ("succeeded", 2)
        assert worker_pid(worker_id) == second.pid
        assert value == {"pid": second.pid, "attempt": 2}
    finally:
        frozen.signal(signal.SIGCONT)

    # The frozen worker's handler wakes up, finishes its work and returns: its outcome
    # must not replace the second worker's.
    wait_for(
        lambda: any(e == "finished" and p == frozen.pid for e, p, _, _ in ledger(db, namespace, job.id)),
        10,
        "the frozen worker's handler to return",
    )
    time.sleep(2 * LEASE)  # time for its flush and heartbeat
    assert results(db, namespace, job.id) == before
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == 0
    assert frozen.alive(), f"the resumed worker died\n{frozen.log()}"

    # ... and it keeps working.
    later = stem.enqueue("acc.step", {"n": 1})
    wait_for(lambda: results(db, namespace, later.id), 15, "a job enqueued after the freeze")
