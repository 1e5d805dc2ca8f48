"""A real ``stem beat`` syncs the app's ``@app.periodic`` entries at start-up and fires them,
and a real ``stem worker run`` runs the jobs; a clash with a file's entry stops beat at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from tests.helpers import REPO_ROOT, run_stem, wait_for

APP = "tests.acceptance.periodicapp:app"
Db = psycopg.Connection[tuple[Any, ...]]


def start(database_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stem_pg", *args, "--app", APP],
        cwd=REPO_ROOT,
        env={**os.environ, "STEM_BROKER_URL": database_url},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_beat_fires_an_entry_declared_in_code_and_a_worker_runs_it(
    database_url: str, namespace: str, db: Db, tmp_path: Path
) -> None:
    Schedules(database_url, namespace).apply(
        load_schedule_yaml("hourly:\n  task: t.file\n  spec: every:1h\n")
    )
    ns = ["--namespace", namespace]
    beat = start(database_url, tmp_path / "beat.log", "beat", *ns, "--max-sleep", "1")
    worker = start(database_url, tmp_path / "worker.log", "worker", "run", *ns, "--poll-interval", "0.2")
    done = sql.SQL(
        "SELECT count(*) >= 2 FROM {}.task_states WHERE task = 'periodic.tick' AND state = 'succeeded'"
    )
    try:
        wait_for(
            lambda: db.execute(done.format(sql.Identifier(namespace))).fetchone() == (True,), 90, "two runs"
        )
    finally:
        stop(beat, worker)
    logs = (tmp_path / "beat.log").read_text() + (tmp_path / "worker.log").read_text()
    rows = db.execute(
        sql.SQL("SELECT name, task, origin FROM {}.schedules ORDER BY name").format(sql.Identifier(namespace))
    ).fetchall()
    assert rows == [
        ("hourly", "t.file", "store"),  # the file's entry, beside the code's
        ("nightly", "periodic.nightly", "code"),
        ("tick", "periodic.tick", "code"),
    ], logs
    assert "2 periodic entries in code; created tick, created nightly" in logs
    results = sql.SQL("SELECT DISTINCT result FROM {}.results WHERE task = 'periodic.tick'")
    assert db.execute(results.format(sql.Identifier(namespace))).fetchall() == [("from code",)]
    assert "schedule 'tick' fired: task periodic.tick" in logs


def test_beat_refuses_to_start_when_a_file_entry_clashes_with_the_code(
    database_url: str, namespace: str
) -> None:
    Schedules(database_url, namespace).apply(load_schedule_yaml("tick:\n  task: t.file\n  spec: every:1h\n"))
    done = run_stem(database_url, "beat", "--app", APP, "--namespace", namespace, real_process=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: schedule entry 'tick' is defined in the schedule store (a file?) and in code with a"
        " different task, spec, kwargs: rename one of them"
    )
    assert "Traceback" not in done.stderr
