"""A worker frozen (SIGSTOP) past its leases must not start the jobs it had prefetched once
it is resumed (SIGCONT): another worker took them over meanwhile and runs them.

The frozen worker runs one job at a time and holds six more prefetched. While it is
stopped, its leases run out, a second worker rescues the jobs and runs them. On SIGCONT
the first worker's running handler returns at once (its sleep ended while it was
stopped) and its runner takes the next prefetched job within milliseconds, before any
heartbeat could tell it the lease is gone: only its own clock can.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.spanapp import TASK, make_app, overlaps, runs
from tests.acceptance.workerapp import Workers, query, wait_registered
from tests.helpers import wait_for

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

LEASE = 2.0
JOBS = 6
RUN_SECONDS = 5.0  # the second worker's runs: still running when the first one resumes


@pytest.mark.timeout(120)
def test_a_worker_resumed_after_its_leases_ran_out_never_starts_its_prefetched_jobs(
    workers: Workers, db: psycopg.Connection[Any], database_url: str, namespace: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "runs.jsonl"
    app = make_app(database_url, namespace)
    frozen = workers.start(
        app="tests.acceptance.spanapp:app",
        lease=LEASE,
        concurrency=1,
        extra=["--prefetch-multiplier", str(JOBS + 1)],
    )
    try:
        wait_registered(db, namespace, {frozen.pid})
        # The blocker's sleep ends while the worker is stopped: it returns right after SIGCONT.
        app.enqueue(TASK, {"path": str(ledger), "seconds": 3.0, "tag": "blocker"})
        wait_for(lambda: runs(ledger), 15, f"the blocker to start\n{workers.logs()}")
        ids = [app.enqueue(TASK, {"path": str(ledger), "seconds": RUN_SECONDS}).id for _ in range(JOBS)]
        held = "SELECT count(*) FROM {ns}.jobs WHERE id = ANY(%s) AND state = 'running' AND worker_id LIKE %s"
        pattern = f"%.{frozen.pid}.%"
        wait_for(lambda: query(db, namespace, held, [ids, pattern])[0][0] == JOBS, 15, "the prefetch")
        frozen.signal(signal.SIGSTOP)
        assert [run.tag for run in runs(ledger)] == ["blocker"], "the blocker ended before the freeze"
        try:
            second = workers.start(app="tests.acceptance.spanapp:app", lease=LEASE, concurrency=JOBS + 2)

            def all_taken_over() -> bool:
                taken = {run.job_id for run in runs(ledger) if run.pid == second.pid}
                return set(ids) <= taken

            wait_for(all_taken_over, 60, f"the second worker to run the jobs\n{workers.logs()}")
        finally:
            frozen.signal(signal.SIGCONT)
        resumed = time.time()
        done = "SELECT count(*) FROM {ns}.results WHERE id = ANY(%s) AND state = 'succeeded'"
        wait_for(lambda: query(db, namespace, done, [ids])[0][0] == JOBS, 60, f"the jobs\n{workers.logs()}")
        wait_for(lambda: time.time() > resumed + 2 * LEASE, 10, "the frozen worker to catch up")
        recorded = [run for run in runs(ledger) if run.job_id in ids]
        logs = workers.logs(tail=None)
        assert [run for run in recorded if run.pid == frozen.pid] == [], f"{recorded}\n{logs}"
        assert overlaps(recorded) == [], f"{recorded}\n{logs}"
        assert sorted(run.job_id for run in recorded) == sorted(ids), f"{recorded}\n{logs}"
        assert frozen.alive(), logs
    finally:
        app.close()
