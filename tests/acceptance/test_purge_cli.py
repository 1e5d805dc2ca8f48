"""``stem purge --queue Q``: deletes the queue's waiting jobs only (each leaves a cancelled
result, as a revoke does), counts first with --dry-run, and asks before deleting (refusing to
guess when there is no terminal to ask on)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.results import TaskResult
from stem_pg.core.errors import TaskCancelled
from tests.helpers import REPO_ROOT, stem_env


def purge(
    database_url: str, namespace: str, *args: str, stdin: int = subprocess.DEVNULL, answer: bytes = b""
) -> subprocess.CompletedProcess[str]:
    env = stem_env(STEM_BROKER_URL=database_url, STEM_NAMESPACE=namespace)
    cmd = [sys.executable, "-m", "stem_pg", "purge", *args]
    if stdin == subprocess.DEVNULL:
        return subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, stdin=stdin, capture_output=True, text=True, timeout=60, check=False
        )
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def jobs(db: psycopg.Connection[Any], namespace: str) -> list[tuple[str, str]]:
    query = sql.SQL("SELECT queue, state FROM {}.jobs ORDER BY queue, state").format(
        sql.Identifier(namespace)
    )
    return [(row[0], row[1]) for row in db.execute(query).fetchall()]


def fill(app: Stem, db: psycopg.Connection[Any], namespace: str) -> TaskResult:
    """In q1: two ready jobs (the first one's handle is returned), one scheduled, one running;
    in q2: one ready; plus a result and a dead letter of q1."""
    ready = [app.enqueue("t.ready", queue="q1") for _ in range(2)]
    app.enqueue("t.later", queue="q1", countdown=3600)
    running = app.enqueue("t.running", queue="q1")
    app.enqueue("t.other", queue="q2")
    ns = sql.Identifier(namespace)
    db.execute(sql.SQL("UPDATE {}.jobs SET state = 'running' WHERE id = %s").format(ns), (running.id,))
    db.execute(
        sql.SQL(
            "INSERT INTO {}.results (id, task, queue, priority, state, attempts, enqueued_at)"
            " VALUES ('done-1', 't.done', 'q1', 0, 'succeeded', 1, now())"
        ).format(ns)
    )
    db.execute(
        sql.SQL(
            "INSERT INTO {}.dead_letters (task_id, task, queue, priority, args, headers, max_retries,"
            " reason, attempts, enqueued_at)"
            " VALUES ('dead-1', 't.dead', 'q1', 0, '{{}}', '{{}}', 3, 'max_retries_exceeded', 4, now())"
        ).format(ns)
    )
    return ready[0]


def count(db: psycopg.Connection[Any], namespace: str, table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(namespace), sql.Identifier(table))
    row = db.execute(query).fetchone()
    assert row is not None
    return int(row[0])


WAITING_AND_OTHERS = [
    ("q1", "queued"),
    ("q1", "queued"),
    ("q1", "queued"),
    ("q1", "running"),
    ("q2", "queued"),
]


def test_purge_deletes_only_the_waiting_jobs_of_the_queue(
    app: Stem, db: psycopg.Connection[Any], database_url: str, namespace: str
) -> None:
    handle = fill(app, db, namespace)
    where = f"queue 'q1' in namespace '{namespace}'"

    dry = purge(database_url, namespace, "--queue", "q1", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (0, f"would purge 3 waiting jobs of {where}\n", "")
    assert jobs(db, namespace) == WAITING_AND_OTHERS

    done = purge(database_url, namespace, "--queue", "q1", "--yes")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"purged 3 waiting jobs of {where}\n", "")
    assert jobs(db, namespace) == [("q1", "running"), ("q2", "queued")]
    assert count(db, namespace, "dead_letters") == 1
    results = sql.SQL("SELECT state, error FROM {}.results ORDER BY 1").format(sql.Identifier(namespace))
    assert db.execute(results).fetchall() == [("cancelled", "purged by stem purge")] * 3 + [
        ("succeeded", None)
    ]
    with pytest.raises(TaskCancelled):  # like a revoke: whoever waits for a purged job hears of it
        handle.get(timeout=5)

    unknown = purge(database_url, namespace, "--queue", "nope", "--yes")
    assert unknown.returncode == 0, unknown.stderr
    assert unknown.stdout == f"purged 0 jobs: no job waits in queue 'nope' in namespace '{namespace}'\n"


def test_purge_asks_first_and_refuses_without_a_terminal(
    app: Stem, db: psycopg.Connection[Any], database_url: str, namespace: str
) -> None:
    fill(app, db, namespace)
    refused = purge(database_url, namespace, "--queue", "q1")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.splitlines() == [
        f"error: not purging 3 waiting jobs of queue 'q1' in namespace '{namespace}': stdin is not"
        " a terminal to confirm; pass --yes"
    ]
    assert jobs(db, namespace) == WAITING_AND_OTHERS

    primary, secondary = pty.openpty()
    try:
        os.write(primary, b"n\n")
        declined = purge(database_url, namespace, "--queue", "q1", stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert f"Delete 3 waiting jobs of queue 'q1' in namespace '{namespace}'? [y/N]" in declined.stdout
    assert jobs(db, namespace) == WAITING_AND_OTHERS
