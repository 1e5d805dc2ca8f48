"""A healthy worker keeps the lease of a task that runs far longer than the lease:
heartbeats must come often enough for every lease the CLI accepts (``--lease`` >= 0.5)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, query, wait_registered
from tests.helpers import wait_for

RUN_SECONDS = 8.0  # longer than one maintenance interval (5 s +- 20 %), so the rescuer looks


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lease", [2.0, 0.5])
def test_long_task_keeps_its_lease_on_a_healthy_worker(
    lease: float, stem: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    worker = workers.start(lease=lease, concurrency=2)
    wait_registered(db, namespace, {worker.pid})
    job = stem.enqueue("acc.step", {"sleep": RUN_SECONDS})
    wait_for(
        lambda: query(db, namespace, "SELECT state FROM {ns}.results WHERE id = %s", [job.id]),
        RUN_SECONDS + 20,
        f"the job to finish\n{workers.logs()}",
    )
    runs = query(
        db, namespace, "SELECT event, attempt FROM {ns}.ledger WHERE task_id = %s ORDER BY at", [job.id]
    )
    [(state, attempts)] = query(
        db, namespace, "SELECT state, attempts FROM {ns}.results WHERE id = %s", [job.id]
    )
    log = worker.log(tail=None)
    assert (state, attempts) == ("succeeded", 1), f"{runs}\n{log}"
    assert runs == [("started", 1), ("finished", 1)], log
    assert "lost the lease" not in log
    assert "rescued" not in log
