"""Every worker connection is terminated (``pg_terminate_backend``) several times while
jobs run: the workers reconnect, every job completes exactly once, no process dies."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import EnqueueRequest
from stem_pg.schema.migrate import migrate
from tests.acceptance.workerapp import (
    Workers,
    create_tables,
    make_app,
    query,
    registered_pids,
    scalar,
    wait_registered,
)
from tests.helpers import unique_namespace, wait_for

JOBS = 2000
KILL_ROUNDS = 5


@pytest.fixture
def private_database(database_url: str) -> Iterator[str]:
    """A database of its own, so that terminating "every worker connection" cannot hit
    workers of other tests running against the shared one."""
    name = f"stem_acc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def terminate_worker_connections(db: psycopg.Connection[Any]) -> int:
    rows = db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE 'stem_pg:worker%'"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(120)
def test_workers_survive_terminated_connections(private_database: str, tmp_path: Path) -> None:
    url = private_database
    ns = unique_namespace()
    migrate(url, ns)
    stem = make_app(url, ns)
    workers = Workers(url, ns, tmp_path)
    with psycopg.connect(url, autocommit=True) as db:
        try:
            create_tables(db, ns)
            parent = workers.start(processes=2, concurrency=8, lease=2.0)
            wait_for(lambda: len(registered_pids(db, ns)) == 2, 20, f"two worker processes\n{workers.logs()}")
            children = registered_pids(db, ns)

            requests = [EnqueueRequest("acc.step", {"n": i, "sleep": 0.03}) for i in range(JOBS)]
            ids = [r.id for r in stem.enqueue_many(requests)]
            wait_for(lambda: scalar(db, ns, "SELECT count(*) FROM {ns}.results") > 0, 20, "the first results")

            killed: list[int] = []
            for _ in range(KILL_ROUNDS):
                done = scalar(db, ns, "SELECT count(*) FROM {ns}.results")
                assert done < JOBS, f"all jobs finished after only {len(killed)} kill rounds"
                killed.append(terminate_worker_connections(db))
                time.sleep(0.5)
            # Each process keeps 5 connections (claim, flush, leases, maintenance, listen).
            assert all(n > 0 for n in killed), killed

            wait_for(
                lambda: scalar(db, ns, "SELECT count(*) FROM {ns}.results") == JOBS,
                60,
                f"all {JOBS} jobs to finish\n{workers.logs()}",
            )
            states = dict(query(db, ns, "SELECT state, count(*) FROM {ns}.results GROUP BY state"))
            assert states == {"succeeded": JOBS}
            assert scalar(db, ns, "SELECT count(*) FROM {ns}.jobs") == 0
            assert scalar(db, ns, "SELECT count(*) FROM {ns}.dead_letters") == 0
            assert set(ids) == {r[0] for r in query(db, ns, "SELECT id FROM {ns}.results")}
            finished = scalar(
                db, ns, "SELECT count(DISTINCT task_id) FROM {ns}.ledger WHERE event = 'finished'"
            )
            assert finished == JOBS
            runs = scalar(db, ns, "SELECT count(*) FROM {ns}.ledger WHERE event = 'started'")
            retried = scalar(db, ns, "SELECT count(*) FROM {ns}.results WHERE attempts > 1")
            print(f"killed per round {killed}; {runs} runs for {JOBS} jobs; {retried} needed a retry")

            # The same processes are still there: nothing crashed and was restarted.
            assert parent.alive(), parent.log()
            assert registered_pids(db, ns) == children
            assert all(alive(pid) for pid in children)
            log = workers.logs()
            assert "connection lost" in log
            assert "restarting it" not in log

            # ... and they keep working.
            more = stem.enqueue_many([EnqueueRequest("acc.step", {"n": JOBS + i}) for i in range(200)])
            wait_for(
                lambda: scalar(db, ns, "SELECT count(*) FROM {ns}.results") == JOBS + len(more),
                30,
                f"jobs enqueued after the outage\n{workers.logs()}",
            )
            wait_registered(db, ns, children)
        finally:
            workers.cleanup()
            stem.close()
