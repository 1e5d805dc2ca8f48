"""A job whose outcome Postgres cannot store fails alone: the batch it was flushed with
is written, nothing runs twice, and the job's own error is recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.poisonapp import make_poison_app
from tests.acceptance.workerapp import Workers, ledger_app, query, scalar
from tests.helpers import wait_for

JOBS = 40
LEASE = 2.0


@pytest.fixture
def pstem(database_url: str, namespace: str, db: psycopg.Connection[Any]) -> Iterator[Stem]:
    with ledger_app(make_poison_app, database_url, namespace, db) as application:
        yield application


@pytest.mark.timeout(120)
def test_a_result_with_a_nul_character_fails_its_job_and_no_other(
    pstem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    query(db, namespace, "CREATE UNIQUE INDEX ledger_task_id_key ON {ns}.ledger (task_id)")
    requests = [EnqueueRequest("acc.once", {"n": i}) for i in range(JOBS - 1)]
    requests.insert(JOBS // 2, EnqueueRequest("acc.poison", task_id="poison"))
    ids = [r.id for r in pstem.enqueue_many(requests)]
    assert "poison" in ids

    # Twenty slots: the outcomes are flushed in batches, the poison's among others.
    workers.start(concurrency=20, lease=LEASE, app="tests.acceptance.poisonapp:app")
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == JOBS,
        60,
        f"{JOBS} results\n{workers.logs()}",
        interval=0.2,
    )
    time.sleep(3 * LEASE)  # a dropped outcome's job would run again once its lease expired

    log = workers.logs(tail=None)
    states = dict(query(db, namespace, "SELECT state, count(*) FROM {ns}.results GROUP BY state"))
    runs = query(db, namespace, "SELECT task_id, attempt FROM {ns}.ledger ORDER BY task_id")
    dupes = query(db, namespace, "SELECT task_id, attempt FROM {ns}.dupes")
    summary = f"results {states}; {len(runs)} runs; {len(dupes)} dupes {dupes[:3]}\n{log[-4000:]}"
    assert states == {"succeeded": JOBS - 1, "failed": 1}, summary
    assert dupes == [], summary
    assert sorted(task_id for task_id, _ in runs) == sorted(ids), summary  # every job ran once
    assert {attempt for _, attempt in runs} == {1}, summary
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0, summary

    poison = query(
        db, namespace, "SELECT state, error, attempts, result FROM {ns}.results WHERE id = 'poison'"
    )
    assert poison == [
        (
            "failed",
            "TaskError: acc.poison: return value is not storable: NUL character at $.items[3]",
            1,
            None,
        )
    ], summary
    dead = query(db, namespace, "SELECT task_id, reason FROM {ns}.dead_letters")
    assert dead == [("poison", "rejected")], summary
    assert "dropping" not in log and "refused" not in log, summary
