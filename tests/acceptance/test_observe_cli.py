"""``stem observe``: ``--json`` rows equal what SQL reads for a namespace of known depth, the
table speaks human units, ``--watch`` refreshes until Ctrl-C, and a bad argument is one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from typer.testing import CliRunner

from stem_pg.cli import app
from tests.helpers import REPO_ROOT, run_cli, stem_env

Db = psycopg.Connection[tuple[Any, ...]]

# (state, seconds since it became runnable; negative: runnable in that many seconds)
JOBS = [("queued", 600), ("queued", 60), ("retried", 5), ("queued", -3600), ("queued", -60), ("running", 10)]
# (state, seconds since it finished)
RESULTS = [("succeeded", 10), ("succeeded", 20), ("failed", 30), ("succeeded", 200)]


def _seed(db: Db, namespace: str) -> None:
    ns = sql.Identifier(namespace)
    for i, (state, ready_since) in enumerate(JOBS):
        db.execute(
            sql.SQL(
                "INSERT INTO {}.jobs (id, task, queue, state, not_before, enqueued_at, started_at)"
                " VALUES (%s, 't', 'emails', %s, now() - make_interval(secs => %s),"
                " now() - interval '1 hour', CASE WHEN %s = 'running' THEN now() END)"
            ).format(ns),
            (f"j{i}", state, ready_since, state),
        )
    for i, (state, ago) in enumerate(RESULTS):
        db.execute(
            sql.SQL(
                "INSERT INTO {}.results (id, task, queue, priority, state, attempts, enqueued_at, started_at,"
                " finished_at) SELECT %s, 't', 'emails', 0, %s, 1, f - interval '3 s', f - interval '1 s', f"
                " FROM (SELECT now() - make_interval(secs => %s) AS f) AS t"
            ).format(ns),
            (f"r{i}", state, ago),
        )
    db.execute(
        sql.SQL(
            "INSERT INTO {}.workers (id, host, pid, queues, concurrency, started_at)"
            " VALUES ('w1', 'h', 7, '{{emails}}', 4, now() - interval '125 minutes')"
        ).format(ns)
    )


def _observe(database_url: str, namespace: str, *args: str) -> Any:
    """``stem observe`` in process (a process costs seconds; the watch test runs the real one)."""
    env = {key: None for key in os.environ if key.startswith("STEM_")} | {"STEM_BROKER_URL": database_url}
    run = CliRunner().invoke(app, ["observe", *args, "--namespace", namespace], env=env)
    assert run.exit_code == 0, run.output + repr(run.exception)
    return run


def test_queues_json_equals_the_queue_health_view(database_url: str, namespace: str, db: Db) -> None:
    _seed(db, namespace)
    rows = json.loads(_observe(database_url, namespace, "queues", "--json").stdout)
    with db.cursor(row_factory=dict_row) as cur:
        expected = cur.execute(
            sql.SQL("SELECT * FROM {}.queue_health ORDER BY queue").format(sql.Identifier(namespace))
        ).fetchall()
    assert [row["queue"] for row in rows] == ["emails"]
    (row,) = rows
    assert set(row) == set(expected[0])
    for column, value in expected[0].items():  # only the age moves between the two reads
        tolerance = 60 if column == "oldest_ready_age" else 1e-9
        assert row[column] == (pytest.approx(value, abs=tolerance) if isinstance(value, float) else value), (
            column
        )
    assert (row["ready"], row["scheduled"], row["running"]) == (3, 2, 1)
    assert row["oldest_ready_age"] == pytest.approx(600, abs=60)
    assert (row["finished_1m"], row["finished_5m"], row["failed_15m"]) == (3, 4, 1)
    assert row["failure_rate_15m"] == pytest.approx(0.25)
    assert row["wait_p50_5m"] == pytest.approx(2.0) and row["run_p95_5m"] == pytest.approx(1.0)


def test_tables_show_human_units(database_url: str, namespace: str, db: Db) -> None:
    _seed(db, namespace)
    queues = _observe(database_url, namespace, "queues").stdout
    (line,) = [line for line in queues.splitlines() if line.strip().startswith("emails")]
    assert re.search(
        r"emails +3 +2 +1 +10m \d\ds +2\.0s / 2\.0s +1\.0s / 1\.0s +3/min 0\.8/min 0\.3/min +1 \(25%\)", line
    )
    workers = _observe(database_url, namespace, "workers").stdout
    (line,) = [line for line in workers.splitlines() if line.strip().startswith("w1")]
    assert re.search(r"w1 +alive +h +7 +emails +-/4 +- +- +2h 05m +\d+(\.\d)?m?s ago", line), line


def test_dlq_and_schedules_views(database_url: str, namespace: str, db: Db) -> None:
    assert "(none)" in _observe(database_url, namespace, "dlq").stdout
    ns = sql.Identifier(namespace)
    db.execute(
        sql.SQL(
            "INSERT INTO {}.dead_letters (task_id, task, queue, priority, args, headers, max_retries, reason,"
            " attempts, enqueued_at, dead_at) SELECT 'd' || g, 'mail.send', 'emails', 0, '{{}}', '{{}}', 3,"
            " 'max_retries_exceeded', 4, now() - interval '3 hours', now() - make_interval(mins => g * 50)"
            " FROM generate_series(1, 3) AS g"
        ).format(ns)
    )
    db.execute(
        sql.SQL(
            "INSERT INTO {}.schedules (name, task, spec, next_run_at, last_run_at, total_runs)"
            " VALUES ('nightly', 'report', '{{}}', now() - interval '95 s', now() - interval '1 day', 12)"
        ).format(ns)
    )
    (group,) = json.loads(_observe(database_url, namespace, "dlq", "--json").stdout)
    assert (group["queue"], group["task"], group["dead"], group["dead_1h"]) == ("emails", "mail.send", 3, 1)
    assert group["top_reason"] == "max_retries_exceeded"
    dlq = _observe(database_url, namespace, "dlq").stdout
    assert re.search(r"emails +mail\.send +3 +1 +50m \d\ds ago +2h 30m ago +max_retries_exceeded", dlq), dlq
    (entry,) = json.loads(_observe(database_url, namespace, "schedules", "--json").stdout)
    assert entry["next_run_in"] == pytest.approx(-95, abs=60) and entry["total_runs"] == 12
    schedules = _observe(database_url, namespace, "schedules").stdout
    assert re.search(r"nightly +report +- +yes +overdue \dm \d\ds +1d 00h ago +12", schedules), schedules


def test_watch_json_prints_a_reading_per_refresh_until_ctrl_c(
    database_url: str, namespace: str, db: Db
) -> None:
    _seed(db, namespace)
    args = ["observe", "queues", "--watch", "--json", "--interval", "200ms", "--namespace", namespace]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stem_pg", *args], cwd=REPO_ROOT, env=stem_env(STEM_BROKER_URL=database_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        db.execute(sql.SQL("DELETE FROM {}.jobs WHERE id = 'j0'").format(sql.Identifier(namespace)))
        while (reading := json.loads(proc.stdout.readline()))[0]["ready"] == 3:
            pass
        assert first[0]["ready"] == 3 and reading[0]["ready"] == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope"],
            "Invalid value for VIEW: unknown view 'nope': choose one of queues, workers, dlq, schedules",
        ),
        (["queues", "--interval", "0"], "Invalid value for --interval: '0' is shorter than 0.1s"),
        (
            ["queues", "--watch", "--interval", "soon"],
            "Invalid value for --interval: 'soon' is not a duration",
        ),
        (
            ["queues", "--window", "2m"],
            "Invalid value for --window: unknown window '2m': choose one of 1m, 5m, 15m",
        ),
    ],
)
def test_a_bad_argument_is_one_line(args: list[str], message: str) -> None:
    """In process (each is refused before any connection); the real program below."""
    run = CliRunner().invoke(app, ["observe", *args])
    assert run.exit_code == 2, run.output
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], run.stderr


def test_the_program_refuses_an_unknown_view_with_one_line() -> None:
    run = run_cli("observe", "job", env=stem_env())
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: Invalid value for VIEW: unknown view 'job': choose one of queues, workers, dlq, schedules"
    ]
