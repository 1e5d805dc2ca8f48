"""``stem check``: exit 0 with one ``ok`` line when every condition holds, 1 with one line per
violated condition (the queue or schedule, the measured value, the limit), 2 for a bad flag."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import run_stem

Db = psycopg.Connection[tuple[Any, ...]]


def check(database_url: str, namespace: str, *args: str) -> Any:
    return run_stem(database_url, "check", "--namespace", namespace, *args)


def _job(db: Db, namespace: str, job_id: str, queue: str, waited: float) -> None:
    db.execute(
        sql.SQL(
            "INSERT INTO {}.jobs (id, task, queue, not_before, enqueued_at)"
            " VALUES (%s, 't', %s, now() - make_interval(secs => %s), now() - make_interval(secs => %s))"
        ).format(sql.Identifier(namespace)),
        (job_id, queue, waited, waited),
    )


def _worker(db: Db, namespace: str, worker_id: str, queues: list[str], silent_for: float = 0) -> None:
    db.execute(
        sql.SQL(
            "INSERT INTO {}.workers (id, host, pid, queues, concurrency, last_heartbeat_at)"
            " VALUES (%s, 'h', 1, %s, 1, now() - make_interval(secs => %s))"
        ).format(sql.Identifier(namespace)),
        (worker_id, queues, silent_for),
    )


def _schedule(db: Db, namespace: str, name: str, overdue: float, *, enabled: bool = True) -> None:
    db.execute(
        sql.SQL(
            "INSERT INTO {}.schedules (name, task, spec, enabled, next_run_at)"
            " VALUES (%s, 't', '{{}}'::jsonb, %s, now() - make_interval(secs => %s))"
        ).format(sql.Identifier(namespace)),
        (name, enabled, overdue),
    )


def _clean(run: Any) -> list[str]:
    assert "Traceback" not in run.stderr, run.stderr
    return list(run.stderr.splitlines())


def test_a_queue_whose_oldest_job_is_too_old_fails_with_one_line(
    database_url: str, namespace: str, db: Db
) -> None:
    _job(db, namespace, "old", "emails", 600)
    _job(db, namespace, "new", "emails", 5)
    _job(db, namespace, "fresh", "reports", 5)
    run = check(database_url, namespace, "--max-age", "5m")
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout == ""
    # The job is 600 s old when it is written; the CLI reads its age seconds later under load.
    [line] = _clean(run)
    assert re.fullmatch(
        r"queue 'emails': oldest ready job waits 10m 0\ds, more than --max-age 5m 00s \(2 ready\)", line
    ), line
    only_reports = check(database_url, namespace, "--max-age", "5m", "--queue", "reports")
    assert only_reports.returncode == 0, only_reports.stderr
    assert only_reports.stdout.splitlines() == ["ok: queues reports; 0 workers alive; within max-age 5m 00s"]


def test_a_healthy_namespace_passes_with_one_ok_line(database_url: str, namespace: str, db: Db) -> None:
    _job(db, namespace, "a", "emails", 5)
    _worker(db, namespace, "w1", ["emails"])
    _worker(db, namespace, "w2", ["emails", "reports"])
    _schedule(db, namespace, "hourly", 5)
    args = ["--max-age", "5m", "--max-failed-rate", "1%", "--min-workers", "2", "--max-schedule-lag", "30s"]
    run = check(database_url, namespace, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "ok: queues emails; 2 workers alive; within max-age 5m 00s, max-failed-rate 1%, min-workers 2,"
        " max-schedule-lag 30s"
    ]
    assert run.stderr == ""


def test_too_few_alive_workers_on_a_queue_fails(database_url: str, namespace: str, db: Db) -> None:
    _job(db, namespace, "a", "emails", 1)
    _worker(db, namespace, "alive", ["emails"])
    _worker(db, namespace, "stale", ["emails"], silent_for=600)  # no heartbeat for 10 minutes
    _worker(db, namespace, "elsewhere", ["reports"])
    run = check(database_url, namespace, "--min-workers", "2")
    assert run.returncode == 1, run.stdout + run.stderr
    assert _clean(run) == ["queue 'emails': 1 alive workers consume it, fewer than --min-workers 2"]


def test_an_overdue_schedule_entry_fails(database_url: str, namespace: str, db: Db) -> None:
    _schedule(db, namespace, "nightly", 120)
    _schedule(db, namespace, "on-time", 10)
    _schedule(db, namespace, "paused", 3600, enabled=False)
    run = check(database_url, namespace, "--max-schedule-lag", "30s")
    assert run.returncode == 1, run.stdout + run.stderr
    lines = _clean(run)
    assert len(lines) == 1 and lines[0].startswith("schedule 'nightly': next run overdue by 2m 0"), lines
    assert lines[0].endswith("more than --max-schedule-lag 30s")


def test_a_failure_rate_above_the_limit_fails(database_url: str, namespace: str, db: Db) -> None:
    db.execute(
        sql.SQL(
            "INSERT INTO {}.results (id, task, queue, priority, state, attempts, enqueued_at)"
            " SELECT 'r' || g, 't', 'emails', 0,"
            " CASE WHEN g <= 3 THEN 'failed' ELSE 'succeeded' END, 1, now()"
            " FROM generate_series(1, 100) AS g"
        ).format(sql.Identifier(namespace))
    )
    run = check(database_url, namespace, "--max-failed-rate", "1%")
    assert run.returncode == 1, run.stdout + run.stderr
    assert _clean(run) == [
        "queue 'emails': 3% of jobs failed in the last 15 minutes (3 of 100), more than --max-failed-rate 1%"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-age", "banana"], "Invalid value for --max-age: 'banana' is not a duration"),
        (
            ["--max-failed-rate", "150%"],
            "Invalid value for --max-failed-rate: '150%' must be between 0% and 100%",
        ),
        (["--max-schedule-lag", "soon"], "Invalid value for --max-schedule-lag: 'soon' is not a duration"),
        (["--min-workers", "-1"], "--min-workers"),
    ],
)
def test_bad_flag_values_are_usage_errors(
    database_url: str, namespace: str, args: list[str], message: str
) -> None:
    run = check(database_url, namespace, *args)
    assert run.returncode == 2, run.stdout + run.stderr
    errors = [line for line in _clean(run) if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], run.stderr
