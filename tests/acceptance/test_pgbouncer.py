"""The engine through a transaction-mode PgBouncer (tests/pgbouncer.py), with real worker and
beat processes whose STEM_BROKER_URL is the pooler's (``?stem_pooler=transaction``).

PgBouncer 1.18 (Debian 12's) hands each transaction to any server session and knows nothing
of prepared statements: a statement psycopg prepares on one session is missing on the next
("prepared statement ... does not exist"), and a LISTEN stays behind on a session the
listener no longer holds. So behind it stem_pg prepares nothing, keeps no session setting,
and LISTENs on STEM_DIRECT_URL (or polls without one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from tests.acceptance.pgbouncerapp import make_pgbouncer_app
from tests.acceptance.workerapp import Workers, registered_pids, scalar, wait_registered
from tests.helpers import REPO_ROOT, stem_env, wait_for
from tests.pgbouncer import PgBouncer, pgbouncer

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

__all__ = ["pgbouncer"]  # the fixture, imported for the tests below

APP = "tests.acceptance.pgbouncerapp:app"
TICK = "tick:\n  task: pgb.tick\n  spec: every:1s\n"
#: Errors a worker behind the pooler must never log (prepared statements, a lost LISTEN...).
BAD = ("does not exist", "loop failed", "Traceback", "connection lost")


def _clean(log: str) -> None:
    for bad in BAD:
        assert bad not in log, f"{bad!r} in the worker's log:\n{log}"


def test_worker_drains_retries_locks_and_workflows_through_pgbouncer(
    pgbouncer: PgBouncer, database_url: str, namespace: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    client = make_pgbouncer_app(pgbouncer.url, namespace)  # no direct URL: its waits poll
    workers = Workers(pgbouncer.url, namespace, tmp_path)
    try:
        # A 10 s poll: jobs done within 8 s were woken by the LISTEN on the direct URL (the
        # retries, due 0.1 s later, are found by the poll).
        worker = workers.start(app=APP, poll_interval=10, extra=["--direct-url", database_url])
        wait_registered(db, namespace, {worker.pid}, timeout=30)
        started = time.monotonic()
        many = client.enqueue_many([("pgb.add", {"a": i, "b": 1}) for i in range(300)])
        singles = [client.enqueue("pgb.add", {"a": i, "b": 2}) for i in range(30)]
        flaky = client.enqueue("pgb.flaky", {"fails": 2})
        locked = [client.enqueue("pgb.locked", {"key": "shared"}) for _ in range(5)]
        run = client.start_workflow("pgb.flow", {"n": 4})
        assert [r.get(timeout=20) for r in many] == [i + 1 for i in range(300)]
        assert [r.get(timeout=20) for r in singles] == [i + 2 for i in range(30)]
        assert time.monotonic() - started < 8, "jobs waited for the 10 s poll: no wake-up was heard"
        assert flaky.get(timeout=40) == 3
        tokens = [r.get(timeout=20) for r in locked]
        assert len(set(tokens)) == 5, tokens
        assert run.get(timeout=20) == [5, 10]
        _clean(worker.log(tail=None))
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, worker.log()
        assert registered_pids(db, namespace) == set()
    finally:
        workers.cleanup()
        client.close()


def test_worker_without_a_direct_url_polls_and_beat_fires_through_pgbouncer(
    pgbouncer: PgBouncer, namespace: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    client = make_pgbouncer_app(pgbouncer.url, namespace)
    Schedules(pgbouncer.url, namespace).apply(
        load_schedule_yaml("tick:\n  task: pgb.tick\n  spec: every:1s\n")
    )
    workers = Workers(pgbouncer.url, namespace, tmp_path)
    beat_log = (tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "stem_pg", "beat", "--app", APP, "--namespace", namespace, "--max-sleep", "1"],
        cwd=REPO_ROOT,
        env=stem_env(STEM_BROKER_URL=pgbouncer.url, PYTHONUNBUFFERED="1"),
        stdout=beat_log,
        stderr=subprocess.STDOUT,
    )
    try:
        worker = workers.start(app=APP, poll_interval=0.2)
        results = client.enqueue_many([("pgb.add", {"a": i, "b": 3}) for i in range(100)])
        assert [r.get(timeout=30) for r in results] == [i + 3 for i in range(100)]
        wait_for(
            lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.task_states WHERE task = 'pgb.tick'"
                           " AND state = 'succeeded'") >= 3,
            30,
            "three ticks fired by beat and run by the worker",
        )  # fmt: skip
        log = worker.log(tail=None)
        assert "without STEM_DIRECT_URL" in log, log
        _clean(log)
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=15)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait()
        beat_log.close()
        workers.cleanup()
        client.close()
    beat_output = (tmp_path / "beat.log").read_text()
    _clean(beat_output)
    assert beat.returncode == 0, beat_output
    assert os.path.exists(tmp_path / "beat.log")
