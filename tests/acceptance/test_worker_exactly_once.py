"""20 000 jobs over four worker processes: every handler commits exactly once.

``acc.once`` inserts its task id into a ledger with a UNIQUE constraint, in its own
transaction. A job that ran twice would hit the constraint (recorded in ``dupes``),
fail, and end up retried or dead-lettered.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import EnqueueRequest, Stem
from tests.acceptance.workerapp import Workers, query, registered_pids, scalar
from tests.helpers import wait_for

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

JOBS = 20_000


@pytest.mark.timeout(120)
def test_every_job_commits_exactly_once_across_processes(
    stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    query(db, namespace, "CREATE UNIQUE INDEX ledger_task_id_key ON {ns}.ledger (task_id)")
    ids = [r.id for r in stem.enqueue_many(EnqueueRequest("acc.once", {"n": i}) for i in range(JOBS))]
    assert len(set(ids)) == JOBS

    began = time.monotonic()
    workers.start(processes=4, concurrency=8, lease=2.0)
    wait_for(lambda: len(registered_pids(db, namespace)) == 4, 20, f"four processes\n{workers.logs()}")

    def settled() -> bool:
        return bool(scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs") == 0)

    wait_for(settled, 90, f"the queue to drain\n{workers.logs()}", interval=0.5)
    elapsed = time.monotonic() - began

    dupes = query(db, namespace, "SELECT task_id, pid, attempt FROM {ns}.dupes ORDER BY at")
    states = dict(query(db, namespace, "SELECT state, count(*) FROM {ns}.results GROUP BY state"))
    dead = dict(query(db, namespace, "SELECT reason, count(*) FROM {ns}.dead_letters GROUP BY reason"))
    retried = scalar(db, namespace, "SELECT count(*) FROM {ns}.results WHERE attempts > 1")
    lost = workers.logs(tail=None).count("lost the lease")
    summary = (
        f"{elapsed:.1f}s; results {states}; dead letters {dead}; {retried} finished after a retry;"
        f" {len(dupes)} duplicate runs (first: {dupes[:3]}); 'lost the lease' logged {lost} times"
    )
    print(summary)
    assert dupes == [], summary
    assert states == {"succeeded": JOBS}, summary
    assert dead == {}, summary
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.ledger") == JOBS
    assert {r[0] for r in query(db, namespace, "SELECT task_id FROM {ns}.ledger")} == set(ids)
    assert retried == 0, summary
    assert elapsed < 60, summary
