"""SIGTERM: a running task finishes, leased-but-unstarted jobs go back untouched; a
second SIGTERM stops at once and the interrupted job runs again elsewhere."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.workerapp import (
    WorkerProcess,
    Workers,
    local_ports,
    query,
    scalar,
    wait_registered,
    worker_pid,
)
from tests.helpers import run_stem, wait_for


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


# -- every stop on purpose gives back what the worker holds ------------------------------
#
# The lease is long (30 s) in these tests: a job left `running` by a stopped worker would
# only come back through the rescuer after it, so nothing but the give-back can pass them.
# The database is made slow where it matters: the test holds row locks on the interrupted
# jobs, so the worker's write that puts them back waits (as it does on a loaded server)
# until the test lets it through; a worker that stops without waiting for it loses it.

LONG_LEASE = 30.0


@contextlib.contextmanager
def slow_writes(database_url: str, namespace: str, ids: list[str]) -> Iterator[int]:
    """Hold row locks on the jobs ``ids`` until the block ends; yields the locker's pid."""
    with psycopg.connect(database_url) as locker:
        query(locker, namespace, "SELECT id FROM {ns}.jobs WHERE id = ANY(%s) FOR UPDATE", [ids])
        try:
            yield locker.info.backend_pid
        finally:
            locker.commit()


def flush_blocked_by(db: psycopg.Connection[Any], locker: int) -> bool:
    """Whether the worker's flush connection (its shared one by default, ``--connections
    minimal``) waits for a lock the ``locker`` holds."""
    rows = db.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name IN ('stem_pg:worker-flush', 'stem_pg:worker')"
        " AND %s = ANY(pg_blocking_pids(pid))",
        [locker],
    ).fetchall()
    return bool(rows[0][0])


def stop_while_writes_are_slow(
    database_url: str,
    db: psycopg.Connection[Any],
    namespace: str,
    first: WorkerProcess,
    running: list[str],
    stop: Callable[[], None],
) -> None:
    """``stop`` the worker while the rows of the ``running`` jobs are locked; let its
    write through once it waits for them and the worker had a second to exit without it."""
    with slow_writes(database_url, namespace, running) as locker:
        stop()
        wait_for(
            lambda: flush_blocked_by(db, locker) or not first.alive(),
            20,
            f"the worker to put the interrupted jobs back\n{first.log()}",
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            first.wait(timeout=1.0)  # a worker that does not wait for its write exits now
    try:
        first.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop\n{first.log()}")


def hold_running_and_prefetched(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, *, grace: float
) -> tuple[WorkerProcess, list[str], list[str]]:
    """A worker (2 slots, 2 more prefetched) running two long jobs and holding two unstarted."""
    first = workers.start(
        concurrency=2,
        lease=LONG_LEASE,
        extra=["--prefetch-multiplier", "2", "--shutdown-grace", str(grace)],
    )
    wait_registered(db, namespace, {first.pid})
    # Each long job sleeps a minute on its first attempt and not at all on its second.
    running = [
        r.id for r in stem.enqueue_many(EnqueueRequest("acc.step", {"sleeps": [60, 0]}) for _ in range(2))
    ]
    wait_for(
        lambda: all(events(db, namespace, i) for i in running), 15, f"the long tasks to start\n{first.log()}"
    )
    waiting = [r.id for r in stem.enqueue_many(EnqueueRequest("acc.step", {"n": n}) for n in (1, 2))]
    wait_for(
        lambda: (
            [(s, worker_pid(w)) for _, s, _, w, _ in live(db, namespace, waiting)]
            == [("running", first.pid)] * 2
        ),
        10,
        f"the worker to lease the two waiting jobs\n{first.log()}",
    )
    return first, running, waiting


def assert_given_back(
    db: psycopg.Connection[Any], namespace: str, first: WorkerProcess, running: list[str], waiting: list[str]
) -> None:
    """Nothing the stopped worker held is left `running`; the interrupted jobs count their
    attempt, the unstarted ones do not; the worker is marked stopped."""
    rows = {r[0]: r[1:] for r in live(db, namespace, running + waiting)}
    assert [rows[i] for i in running] == [("retried", 1, None, None)] * 2, first.log()
    assert [rows[i] for i in waiting] == [("queued", 0, None, None)] * 2, first.log()
    for task_id in running:
        errors = scalar(db, namespace, "SELECT errors FROM {ns}.jobs WHERE id = %s", [task_id])
        assert [(e["attempt"], "stopped while the task was running" in e["error"]) for e in errors] == [
            (1, True)
        ]
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = ANY(%s)", [waiting]) == 0
    assert scalar(
        db, namespace, "SELECT stopped_at IS NOT NULL FROM {ns}.workers WHERE pid = %s", [first.pid]
    ), first.log()


def assert_run_again_by(
    workers: Workers,
    db: psycopg.Connection[Any],
    namespace: str,
    first: WorkerProcess,
    running: list[str],
    waiting: list[str],
) -> None:
    second = workers.start(concurrency=4, lease=LONG_LEASE)
    wait_for(
        lambda: len(results(db, namespace, running + waiting)) == 4,
        30,
        f"the given-back jobs to run again\n{workers.logs()}",
    )
    done = results(db, namespace, running + waiting)
    assert [(*done[i][:2], worker_pid(done[i][2])) for i in running] == [("succeeded", 2, second.pid)] * 2
    assert [(*done[i][:2], worker_pid(done[i][2])) for i in waiting] == [("succeeded", 1, second.pid)] * 2
    for task_id in running:
        assert events(db, namespace, task_id) == [
            ("started", first.pid, 1),
            ("started", second.pid, 2),
            ("finished", second.pid, 2),
        ]


@pytest.mark.timeout(90)
def test_sigterm_past_grace_gives_back_running_and_prefetched_jobs(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    first, running, waiting = hold_running_and_prefetched(stem, workers, db, namespace, grace=1.0)

    stop_while_writes_are_slow(
        database_url, db, namespace, first, running, lambda: first.signal(signal.SIGTERM)
    )
    assert first.popen.returncode == 0, first.log()

    assert_given_back(db, namespace, first, running, waiting)
    assert_run_again_by(workers, db, namespace, first, running, waiting)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("second_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_gives_back_running_and_prefetched_jobs(
    stem: Stem,
    workers: Workers,
    db: psycopg.Connection[Any],
    namespace: str,
    database_url: str,
    second_signal: int,
) -> None:
    first, running, waiting = hold_running_and_prefetched(stem, workers, db, namespace, grace=60.0)

    first.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert first.alive(), "the first SIGTERM should wait for the running tasks"
    stop_while_writes_are_slow(
        database_url, db, namespace, first, running, lambda: first.signal(second_signal)
    )
    assert first.popen.returncode != 0

    assert_given_back(db, namespace, first, running, waiting)
    assert_run_again_by(workers, db, namespace, first, running, waiting)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_shutdown_command_gives_back_running_and_prefetched_jobs(
    stem: Stem,
    workers: Workers,
    db: psycopg.Connection[Any],
    namespace: str,
    database_url: str,
    mode: str,
) -> None:
    first, running, waiting = hold_running_and_prefetched(stem, workers, db, namespace, grace=60.0)

    def shutdown() -> None:
        done = run_stem(database_url, "worker", "shutdown", "--namespace", namespace, "--mode", mode)
        assert done.returncode == 0, done.stderr

    stop_while_writes_are_slow(database_url, db, namespace, first, running, shutdown)
    assert first.popen.returncode == 0, first.log()  # a stop on command is no failure

    assert_given_back(db, namespace, first, running, waiting)
    assert_run_again_by(workers, db, namespace, first, running, waiting)


@pytest.mark.timeout(90)
def test_supervisor_stopping_its_children_gives_back_their_jobs(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    parent = workers.start(
        processes=2,
        concurrency=1,
        lease=LONG_LEASE,
        extra=["--prefetch-multiplier", "1", "--shutdown-grace", "1"],
    )
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.workers WHERE stopped_at IS NULL") == 2,
        20,
        f"two worker processes\n{parent.log()}",
    )
    running = [
        r.id for r in stem.enqueue_many(EnqueueRequest("acc.step", {"sleeps": [60, 0]}) for _ in range(2))
    ]
    wait_for(
        lambda: all(events(db, namespace, i) for i in running), 15, f"the long tasks to start\n{parent.log()}"
    )
    children = {pid for _, pid, _ in events(db, namespace, running[0]) + events(db, namespace, running[1])}
    assert len(children) == 2, "one long task in each child"

    stop_while_writes_are_slow(
        database_url, db, namespace, parent, running, lambda: parent.signal(signal.SIGTERM)
    )

    rows = {r[0]: r[1:] for r in live(db, namespace, running)}
    assert [rows[i] for i in running] == [("retried", 1, None, None)] * 2, parent.log()
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.workers WHERE stopped_at IS NULL") == 0


@pytest.mark.timeout(60)
def test_worker_whose_heartbeat_connection_died_still_marks_itself_stopped(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    first = workers.start(concurrency=1, lease=LONG_LEASE)
    wait_registered(db, namespace, {first.pid})
    job = stem.enqueue("acc.step", {"sleep": 0.2})
    wait_for(lambda: results(db, namespace, [job.id]), 15, f"the job to run\n{first.log()}")
    # The heartbeat connection: the worker's "leases" connection (its shared one by default,
    # ``--connections minimal``), found by the worker process's own ports (other tests'
    # workers share the server).
    killed = query(
        db,
        namespace,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name IN ('stem_pg:worker-leases', 'stem_pg:worker') AND client_port = ANY(%s)",
        [sorted(local_ports(first.pid))],
    )
    assert killed == [(True,)]

    first.signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0, first.log()
    assert scalar(
        db, namespace, "SELECT stopped_at IS NOT NULL FROM {ns}.workers WHERE pid = %s", [first.pid]
    ), first.log()
