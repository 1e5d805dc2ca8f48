"""``stem dlq`` from a shell: a job dead-lettered by real workers is listed, shown,
replayed (and runs again), then purged; bad input is refused clearly."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, query, scalar
from tests.helpers import run_stem, wait_for


def stem_dlq(database_url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stem(database_url, "dlq", *args, "--namespace", namespace)


def started(db: psycopg.Connection[Any], namespace: str, task_id: str) -> int:
    sql = "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s AND event = 'started'"
    return int(scalar(db, namespace, sql, [task_id]))


def dead(db: psycopg.Connection[Any], namespace: str, task_id: str) -> list[tuple[Any, ...]]:
    sql = "SELECT id, reason, replayed_at IS NOT NULL FROM {ns}.dead_letters WHERE task_id = %s ORDER BY id"
    return query(db, namespace, sql, [task_id])


@pytest.mark.timeout(120)
def test_a_dead_letter_is_listed_shown_replayed_runs_again_and_is_purged(
    stem: Stem, workers: Workers, database_url: str, namespace: str, db: psycopg.Connection[Any]
) -> None:
    workers.start(poll_interval=0.05)
    job = stem.enqueue("acc.fail_always")  # 3 attempts, then a dead letter
    wait_for(lambda: dead(db, namespace, job.id), 30, f"the dead letter\n{workers.logs()}")
    assert started(db, namespace, job.id) == 3

    listed = stem_dlq(database_url, namespace, "list", "--queue", "default", "--since", "1h", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["task_id"], entry["reason"], entry["attempts"]) == (job.id, "max_retries_exceeded", 3)
    assert stem_dlq(database_url, namespace, "list", "--queue", "elsewhere", "--json").stdout.strip() == "[]"

    shown = stem_dlq(database_url, namespace, "show", job.id)
    assert shown.returncode == 0, shown.stderr
    [letter] = json.loads(shown.stdout)
    assert [h["error"] for h in letter["errors"]] == [f"RuntimeError: boom on attempt {k}" for k in (1, 2, 3)]

    dry = stem_dlq(database_url, namespace, "replay", "--queue", "default", "--dry-run")
    assert dry.returncode == 0 and "would replay 1 dead letters" in dry.stdout, dry.stdout + dry.stderr
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0  # nothing changed

    replayed = stem_dlq(database_url, namespace, "replay", job.id)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.split() == ["replayed", "1", "dead", "letters", job.id]
    # It runs again under its own task id: three more attempts, a second dead letter.
    wait_for(lambda: len(dead(db, namespace, job.id)) == 2, 30, f"the replay to fail again\n{workers.logs()}")
    assert started(db, namespace, job.id) == 6
    assert [(reason, was_replayed) for _, reason, was_replayed in dead(db, namespace, job.id)] == [
        ("max_retries_exceeded", True),
        ("max_retries_exceeded", False),
    ]
    again = json.loads(stem_dlq(database_url, namespace, "list", "--json").stdout)
    assert [e["id"] for e in again] == [dead(db, namespace, job.id)[1][0]]  # replayed ones are not listed

    counted = stem_dlq(database_url, namespace, "purge", "--queue", "default", "--dry-run")
    assert "would purge 1 dead letters" in counted.stdout, counted.stdout + counted.stderr
    purged = stem_dlq(database_url, namespace, "purge", "--queue", "default", "--yes")
    assert purged.returncode == 0 and "purged 2 dead letters" in purged.stdout, purged.stdout + purged.stderr
    assert dead(db, namespace, job.id) == []


def test_dlq_refuses_bad_input_clearly(stem: Stem, database_url: str, namespace: str) -> None:
    missing = stem_dlq(database_url, namespace, "show", "no-such-task")
    assert missing.returncode == 1 and "no dead letter 'no-such-task'" in missing.stderr
    since = stem_dlq(database_url, namespace, "list", "--since", "yesterday")
    assert since.returncode == 2 and "--since" in since.stderr, since.stderr
    limit = stem_dlq(database_url, namespace, "replay", "--limit", "0")
    assert limit.returncode == 2 and "--limit" in limit.stderr, limit.stderr
