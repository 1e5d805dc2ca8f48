"""A worker process through a database outage and a frozen listener, on a private cluster.

* The server is down for ~10 s while a job ends: each loop backs off (a few attempts,
  not several a second: before, the flusher alone logged 57 of 95 warnings), logs one
  warning when the outage starts and one "reconnected after N s" line when it ends,
  and jobs run again within seconds.
* The listener's backend stops answering (SIGSTOP, as a silent network partition
  would look): with ``--poll-interval 30`` a job enqueued meanwhile still starts
  within seconds, because the idle listener's round trip fails and it reconnects.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.core.backoff import RECONNECT_CAP
from tests.acceptance.workerapp import Workers, create_tables, make_app, registered_pids, scalar
from tests.cluster import PrivateCluster, migrated, private_cluster
from tests.helpers import wait_for

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

__all__ = ["private_cluster"]  # the fixture, imported for the tests below

OUTAGE = 10.0
#: Each ``--connections`` mode's connections (their roles, as logged), and the ones whose
#: loops wait on the server throughout (each must say when it came back).
ROLES = {
    "minimal": ("worker", "worker-listen"),
    "per-loop": (
        "worker-claim",
        "worker-flush",
        "worker-leases",
        "worker-maintenance",
        "worker-control",
        "worker-listen",
    ),
}
RECONNECTED = r"(worker(?:-[a-z]+)?) reconnected after ([\d.]+) s \((\d+) failed attempts?\)"
WAITING_ROLES = {
    "minimal": ("worker", "worker-listen"),
    "per-loop": ("worker-claim", "worker-listen", "worker-leases", "worker-flush"),
}


@pytest.fixture
def setup(private_cluster: PrivateCluster, tmp_path: Path) -> Iterator[tuple[Workers, Stem, str]]:
    namespace = migrated(private_cluster, "reconnect")
    with private_cluster.connect() as db:
        create_tables(db, namespace)
    workers = Workers(private_cluster.url, namespace, tmp_path)
    stem = make_app(private_cluster.url, namespace)
    try:
        yield workers, stem, namespace
    finally:
        workers.cleanup()
        stem.close()


def _done(cluster: PrivateCluster, namespace: str, task_id: str) -> bool:
    with contextlib.suppress(psycopg.OperationalError), cluster.connect() as db:
        return bool(scalar(db, namespace, "SELECT count(*) FROM {ns}.results WHERE id = %s", [task_id]))
    return False


def _started(cluster: PrivateCluster, namespace: str, task_id: str) -> bool:
    with cluster.connect() as db:
        return bool(scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [task_id]))


def _registered(cluster: PrivateCluster, namespace: str) -> set[int]:
    with cluster.connect() as db:
        return registered_pids(db, namespace)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode", ["minimal", "per-loop"])
def test_an_outage_costs_each_loop_one_warning_and_a_few_attempts(
    private_cluster: PrivateCluster, setup: tuple[Workers, Stem, str], mode: str
) -> None:
    """One warning per connection (``minimal``, the default: the loops' shared one and
    LISTEN; ``per-loop``: each loop's), a few attempts each, and all back within seconds."""
    workers, stem, namespace = setup
    roles, waiting_roles = ROLES[mode], WAITING_ROLES[mode]
    proc = workers.start(concurrency=4, poll_interval=1.0, extra=["--connections", mode])
    wait_for(lambda: _registered(private_cluster, namespace), 30, f"the worker to register\n{workers.logs()}")
    first = stem.enqueue("acc.step", {"n": 1})
    wait_for(lambda: _done(private_cluster, namespace, first.id), 30, f"a first job\n{workers.logs()}")
    time.sleep(1.0)  # every loop has used its connection by now

    # A job that ends during the outage: the flusher has an outcome to retry throughout.
    busy = stem.enqueue("acc.step", {"n": 3, "sleep": 2.0})
    wait_for(lambda: _started(private_cluster, namespace, busy.id), 30, f"a long job\n{workers.logs()}")
    before = len(proc.log(tail=None))
    stem.close()  # the test's own pool: its next enqueue connects afresh
    private_cluster.crash()
    time.sleep(OUTAGE)
    private_cluster.start()
    restarted = time.monotonic()
    after = stem.enqueue("acc.step", {"n": 2})
    wait_for(
        lambda: _done(private_cluster, namespace, after.id), 30, f"a job after the outage\n{workers.logs()}"
    )
    resumed = time.monotonic() - restarted
    # The loops that were sleeping a backoff (capped at RECONNECT_CAP) when the server came
    # back reconnect on their next attempt: wait for their lines rather than guess a sleep.
    wait_for(
        lambda: all(f"{role} reconnected after" in proc.log(tail=None)[before:] for role in waiting_roles),
        2 * RECONNECT_CAP + 5,
        f"every waiting loop to reconnect\n{workers.logs()}",
    )

    log = proc.log(tail=None)[before:]
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    lost = Counter(role for line in warnings for role in roles if f"{role} connection lost" in line)
    reconnected = {m.group(1): int(m.group(3)) for m in re.finditer(RECONNECTED, log)}
    print(f"{len(warnings)} warnings, lost {dict(lost)}, attempts {reconnected}, back in {resumed:.1f} s")
    assert proc.alive(), log
    # One warning per loop when the outage starts, none per retry (main: one per attempt,
    # the flusher's ~6 a second).
    assert all(n == 1 for n in lost.values()), (lost, log)
    assert len(warnings) <= len(roles) + 2, "\n".join(warnings)
    # The loops that were waiting on the server noticed it at once, retried through the
    # outage with a backoff capped at a few seconds (a handful of attempts in ~10 s, not
    # dozens), and say when it came back (the flusher retries the long job's outcome).
    for role in waiting_roles:
        assert role in reconnected, f"no 'reconnected after' line for {role}\n{log}"
        assert 3 <= reconnected[role] <= 15, reconnected
    assert all(attempts <= 15 for attempts in reconnected.values()), reconnected
    # ... and the worker is back within seconds of the server.
    assert resumed < 15, f"the first job after the outage ran {resumed:.1f} s after the restart"


def _listener_pids(db: psycopg.Connection[Any]) -> list[int]:
    rows = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'stem_pg:worker-listen'"
    ).fetchall()
    return [int(pid) for (pid,) in rows]


@pytest.mark.timeout(120)
def test_a_frozen_listener_is_replaced_and_the_job_starts_within_seconds(
    private_cluster: PrivateCluster, setup: tuple[Workers, Stem, str]
) -> None:
    workers, stem, namespace = setup
    proc = workers.start(concurrency=2, poll_interval=30.0)
    wait_for(lambda: _registered(private_cluster, namespace), 30, f"the worker to register\n{workers.logs()}")
    first = stem.enqueue("acc.step", {"n": 1})  # woken by NOTIFY, not the 30 s poll
    wait_for(lambda: _done(private_cluster, namespace, first.id), 20, f"a first job\n{workers.logs()}")

    with private_cluster.connect() as db:
        (frozen,) = _listener_pids(db)
    os.kill(frozen, signal.SIGSTOP)  # a backend of our private cluster only
    try:
        time.sleep(0.5)
        start = time.monotonic()
        job = stem.enqueue("acc.step", {"n": 2})
        wait_for(lambda: _done(private_cluster, namespace, job.id), 25, f"the job\n{workers.logs()}")
        took = time.monotonic() - start
    finally:
        os.kill(frozen, signal.SIGCONT)
    log = proc.log(tail=None)
    print(f"job done {took:.1f} s after it was enqueued (poll interval 30 s)")
    assert took < 12, f"the job waited {took:.1f} s (the poll is 30 s)\n{log}"
    assert "worker-listen connection lost: the server did not answer" in log, log
    assert "worker-listen reconnected after" in log, log
    with private_cluster.connect() as db:
        # The worker cut the frozen connection: thawed, its backend finds it closed and exits.
        wait_for(lambda: frozen not in _listener_pids(db), 10, "the frozen listener's backend to exit")
        assert len(_listener_pids(db)) == 1
