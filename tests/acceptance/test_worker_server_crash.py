"""A server crash right after a claim must not make a job run twice at the same time while
the worker that claimed it is alive (a private cluster, crashed with an immediate shutdown).

The claim is a durable commit, so it survives the crash; and after any connection failure
the holder extends every lease again before it starts anything, so a lease the server did
forget would be noticed (and logged by task id) instead of silently run twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.acceptance.spanapp import TASK, make_app, overlaps, runs
from tests.acceptance.workerapp import Workers, query, wait_registered, worker_pid
from tests.cluster import PrivateCluster, migrated, private_cluster  # noqa: F401 (a fixture)
from tests.helpers import wait_for

# A chaos run on real processes (about 10-30 s): in `pytest -m slow`, which CI runs too.
pytestmark = pytest.mark.slow

#: Longer than any restart of the cluster on a loaded machine, so no lease runs out meanwhile.
LEASE = 20.0
JOB_SECONDS = 8.0  # outlasts the outage: a second run would overlap the first
JOBS = 4  # two run at once, two wait prefetched (concurrency 2, prefetch 2)


@pytest.mark.timeout(180)
def test_a_claim_survives_a_server_crash_and_no_job_runs_twice_at_once(
    private_cluster: PrivateCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    cluster = private_cluster
    namespace = migrated(cluster)
    with cluster.connect() as db:
        # Commits that do not wait for their WAL flush stay unflushed for up to 10 s: a
        # claim that is not durable is then surely lost in the crash.
        db.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
        db.execute("SELECT pg_reload_conf()")
    ledger = tmp_path / "runs.jsonl"
    workers = Workers(cluster.url, namespace, tmp_path)
    try:
        first = workers.start(app="tests.acceptance.spanapp:app", lease=LEASE, concurrency=2)
        with cluster.connect() as db:
            wait_registered(db, namespace, {first.pid}, timeout=60)
        app = make_app(cluster.url, namespace)
        try:
            ids = [app.enqueue(TASK, {"path": str(ledger), "seconds": JOB_SECONDS}).id for _ in range(JOBS)]
        finally:
            app.close()
        wait_for(lambda: runs(ledger), 30, f"a job to start\n{workers.logs()}", interval=0.002)
        # All four claimed, and the replies back (the prefetch claim follows the first one):
        # a claim whose reply the crash cuts off is unknown to the worker, so its lease runs
        # out and it is claimed again (attempts 2), which is not what this test is about.
        # The claims' commits are still unflushed then (wal_writer_delay above).
        wait_for(lambda: _running(cluster, namespace) == JOBS, 30, f"all claimed\n{workers.logs()}")
        time.sleep(0.2)
        cluster.crash()
        cluster.start()
        # A worker refuses to start while its database is down (one line, exit 1), so the
        # second worker starts once the server is back, racing the first for the jobs.
        second = workers.start(app="tests.acceptance.spanapp:app", lease=LEASE, concurrency=4)

        def finished() -> bool:
            with cluster.connect() as db:
                done = query(db, namespace, "SELECT count(*) FROM {ns}.results")[0][0]
            recorded = runs(ledger)
            return done == JOBS and all(run.end is not None for run in recorded)

        wait_for(finished, 120, f"the jobs to finish\n{workers.logs()}", interval=0.2)
        with cluster.connect() as db:
            results = query(db, namespace, "SELECT id, state, attempts, worker_id FROM {ns}.results")
        recorded = runs(ledger)
        logs = workers.logs(tail=None)
        assert overlaps(recorded) == [], f"{recorded}\n{logs}"
        assert sorted(r[0] for r in results) == sorted(ids), logs
        assert {r[1] for r in results} == {"succeeded"}, f"{results}\n{logs}"
        assert "connection lost" in first.log(tail=None)  # the crash did reach the first worker
        # Whatever ran somewhere else than in the first worker, the first worker lost and said so.
        first_log = first.log(tail=None)
        for job_id in ids:
            elsewhere = [run for run in recorded if run.job_id == job_id and run.pid != first.pid]
            if elsewhere:
                assert f"lost the lease of task {job_id}" in first_log, f"{recorded}\n{logs}"
        # The claim is durable: nothing was lost, every job ran once, in the first worker.
        assert sorted(run.job_id for run in recorded) == sorted(ids), f"{recorded}\n{logs}"
        assert {worker_pid(r[3]) for r in results} == {first.pid}, f"{results}\n{logs}"
        assert {r[2] for r in results} == {1}, f"{results}\n{logs}"
        assert first.alive() and second.alive(), logs
    finally:
        workers.cleanup()


@pytest.mark.timeout(120)
def test_after_a_connection_failure_a_lease_the_server_forgot_is_found_lost_and_never_started(
    private_cluster: PrivateCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    """What a server that lost acknowledged commits would do (the claims of three prefetched
    jobs gone to another holder), then every worker connection cut: the worker extends its
    leases again as soon as it reconnects, well before its next heartbeat (10 s away), finds
    the three lost, says so, and never starts them."""
    cluster = private_cluster
    namespace = migrated(cluster)
    ledger = tmp_path / "runs.jsonl"
    workers = Workers(cluster.url, namespace, tmp_path)
    try:
        worker = workers.start(
            app="tests.acceptance.spanapp:app",
            lease=30.0,
            concurrency=1,
            extra=["--prefetch-multiplier", "4"],
        )
        with cluster.connect() as db:
            wait_registered(db, namespace, {worker.pid}, timeout=60)
            app = make_app(cluster.url, namespace)
            try:
                blocker = app.enqueue(TASK, {"path": str(ledger), "seconds": 6.0, "tag": "blocker"}).id
                wait_for(lambda: runs(ledger), 30, f"the blocker to start\n{workers.logs()}")
                ids = [app.enqueue(TASK, {"path": str(ledger), "seconds": 1.0}).id for _ in range(3)]
            finally:
                app.close()
            held = "SELECT count(*) FROM {ns}.jobs WHERE id = ANY(%s) AND state = 'running'"
            wait_for(lambda: query(db, namespace, held, [ids])[0][0] == 3, 30, "the worker to prefetch")
            query(
                db,
                namespace,
                "UPDATE {ns}.jobs SET lease_token = gen_random_uuid(), worker_id = 'elsewhere'"
                " WHERE id = ANY(%s)",
                [ids],
            )
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'stem_pg:worker%' AND pid <> pg_backend_pid()"
            )

        def lost_all() -> bool:
            log = worker.log(tail=None)
            return all(f"lost the lease of task {job_id}" in log for job_id in ids)

        wait_for(lambda: all(r.end is not None for r in runs(ledger)), 30, "the blocker to end")
        time.sleep(2.0)  # time to start what the runner took next
        recorded = runs(ledger)
        assert [run.job_id for run in recorded] == [blocker], f"{recorded}\n{workers.logs()}"
        wait_for(lost_all, 30, f"the worker to find the three leases lost\n{workers.logs()}")
        assert worker.alive(), workers.logs()
    finally:
        workers.cleanup()


def _running(cluster: PrivateCluster, namespace: str) -> int:
    with cluster.connect() as db:
        return int(query(db, namespace, "SELECT count(*) FROM {ns}.jobs WHERE state = 'running'")[0][0])
