"""``stem worker ping|stats|inspect|revoke|pause|resume|shutdown`` against real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.schema.migrate import migrate
from tests.acceptance.controlapp import APP
from tests.acceptance.workerapp import Workers, query, scalar, wait_registered
from tests.helpers import (
    REPO_ROOT,
    drop_schema,
    migrated_namespace,
    run_stem,
    stem_env,
    unique_namespace,
    wait_for,
)

Db = psycopg.Connection[Any]


@pytest.fixture
def staging(database_url: str) -> Iterator[str]:
    """A second migrated namespace in the style of the docs' ``staging``."""
    with migrated_namespace(database_url, "staging") as name:
        yield name


def stem_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stem(database_url, "worker", *args)


def cli_json(database_url: str, *args: str) -> dict[str, Any]:
    done = stem_cli(database_url, *args, "--json")
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def worker_ids(db: Db, ns: str) -> set[str]:
    return {r[0] for r in query(db, ns, "SELECT id FROM {ns}.workers WHERE stopped_at IS NULL")}


def started(db: Db, ns: str, task_id: str) -> bool:
    return bool(scalar(db, ns, "SELECT count(*) FROM {ns}.ledger WHERE task_id = %s", [task_id]))


@pytest.mark.timeout(60)
def test_ping_answers_from_exactly_the_workers_of_the_namespace(
    capp: Stem, workers: Workers, db: Db, namespace: str, staging: str, database_url: str
) -> None:
    ours = [workers.start(app=APP, namespace=staging) for _ in range(2)]
    theirs = workers.start(app=APP)
    wait_registered(db, staging, {p.pid for p in ours})
    wait_registered(db, namespace, {theirs.pid})

    pong = cli_json(database_url, "ping", "--namespace", staging, "--timeout", "3s")
    assert set(pong["replies"]) == worker_ids(db, staging)
    assert len(pong["replies"]) == 2 and pong["missing"] == []
    other = cli_json(database_url, "ping", "--namespace", namespace, "--timeout", "3s")
    assert set(other["replies"]) == worker_ids(db, namespace)
    assert not set(other["replies"]) & set(pong["replies"])

    text = stem_cli(database_url, "ping", "--namespace", staging, "--timeout", "2s")
    assert text.returncode == 0 and text.stdout.count("pong") == 2
    empty = unique_namespace()
    migrate(database_url, empty)
    try:
        silent = stem_cli(database_url, "ping", "--namespace", empty, "--timeout", "0.5s")
        assert silent.returncode == 1 and "no worker replied" in silent.stderr
    finally:
        drop_schema(database_url, empty)


@pytest.mark.timeout(60)
def test_stats_and_inspect_show_the_task_running_right_now(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    proc = workers.start(app=APP, concurrency=4)
    wait_registered(db, namespace, {proc.pid})
    job = capp.enqueue("ctl.forever")
    wait_for(lambda: started(db, namespace, job.id), 15, "the task to start")

    (stats,) = cli_json(database_url, "stats", "--namespace", namespace)["replies"].values()
    assert (stats["active"], stats["inflight"], stats["concurrency"], stats["pid"]) == (1, 1, 4, proc.pid)
    assert stats["queues"] == ["default"] and stats["last_heartbeat"]
    (inspect,) = cli_json(database_url, "inspect", "--namespace", namespace)["replies"].values()
    (active,) = inspect["active"]
    assert (active["id"], active["task"]) == (job.id, "ctl.forever")
    assert active["runtime"] > 0
    assert "ctl.forever" in inspect["registered"]
    table = stem_cli(database_url, "inspect", "--namespace", namespace)
    assert job.id in table.stdout


@pytest.mark.timeout(60)
def test_revoke_terminate_stops_a_long_async_task_within_a_second(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    proc = workers.start(app=APP)
    wait_registered(db, namespace, {proc.pid})
    job = capp.enqueue("ctl.forever")
    wait_for(lambda: started(db, namespace, job.id), 15, "the task to start")

    done = stem_cli(
        database_url, "revoke", "--namespace", namespace, "--task", job.id, "--terminate", "--reason", "ops"
    )
    assert done.returncode == 0, done.stderr
    assert "terminat" in done.stdout
    wait_for(
        lambda: scalar(db, namespace, "SELECT state FROM {ns}.results WHERE id = %s", [job.id]), 5, "a result"
    )
    state, error, took = query(
        db,
        namespace,
        "SELECT r.state, r.error, extract(epoch FROM r.finished_at - v.revoked_at)"
        " FROM {ns}.results r JOIN {ns}.revokes v ON v.task_id = r.id WHERE r.id = %s",
        [job.id],
    )[0]
    assert (state, error) == ("cancelled", "revoked: ops")
    assert float(took) < 1.0
    assert proc.alive()


@pytest.mark.timeout(60)
def test_a_revoked_queued_task_never_runs(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    proc = workers.start(app=APP)
    wait_registered(db, namespace, {proc.pid})
    job = capp.enqueue("ctl.step", countdown=1.5)
    revoked = cli_json(database_url, "revoke", "--namespace", namespace, "--task", job.id, "--timeout", "1s")
    assert [(r["outcome"], r["state"]) for r in revoked["revokes"]] == [("cancelled", "cancelled")]
    time.sleep(2.5)  # past its countdown
    assert not started(db, namespace, job.id)
    assert query(db, namespace, "SELECT state, error FROM {ns}.task_states WHERE id = %s", [job.id]) == [
        ("cancelled", "revoked")
    ]
    again = stem_cli(database_url, "revoke", "--namespace", namespace, "--task", job.id, "--timeout", "0.5s")
    assert again.returncode == 0 and "nothing changed" in again.stdout


@pytest.mark.timeout(60)
def test_a_paused_queue_is_not_consumed_until_resumed_across_a_restart(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    first = workers.start(app=APP)
    wait_registered(db, namespace, {first.pid})
    paused = cli_json(
        database_url, "pause", "--namespace", namespace, "--queue", "default", "--reason", "deploy"
    )
    assert paused["queue"]["reason"] == "deploy" and len(paused["replies"]) == 1
    job = capp.enqueue("ctl.step")
    time.sleep(1.0)
    assert job.state == "queued"

    first.signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    second = workers.start(app=APP)
    wait_registered(db, namespace, {second.pid})
    (inspect,) = cli_json(database_url, "inspect", "--namespace", namespace)["replies"].values()
    assert inspect["paused"] == ["default"]
    time.sleep(1.0)
    assert job.state == "queued" and not started(db, namespace, job.id)

    resumed = stem_cli(database_url, "resume", "--namespace", namespace, "--queue", "default")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    assert job.get(timeout=10) == second.pid


@pytest.mark.timeout(60)
def test_shutdown_command_stops_workers_for_good(
    capp: Stem, workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    proc = workers.start(app=APP, processes=2)
    wait_for(lambda: len(worker_ids(db, namespace)) == 2, 15, "two worker processes")
    one = sorted(worker_ids(db, namespace))[0]
    done = cli_json(database_url, "shutdown", "--namespace", namespace, "--worker", one, "--mode", "soft")
    assert done["replies"] == {one: {"shutdown": "soft"}}
    wait_for(lambda: one not in worker_ids(db, namespace), 10, "the child to stop")
    time.sleep(1.5)  # the supervisor does not restart a child that stopped on command
    assert len(worker_ids(db, namespace)) == 1
    cli_json(database_url, "shutdown", "--namespace", namespace, "--mode", "hard")
    assert proc.wait(timeout=15) == 0


@pytest.mark.timeout(60)
def test_status_follow_prints_the_table_again_and_again(
    workers: Workers, db: Db, namespace: str, database_url: str
) -> None:
    proc = workers.start()
    wait_registered(db, namespace, {proc.pid})
    env = stem_env(STEM_BROKER_URL=database_url)
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stem_pg",
            "worker",
            "status",
            "--namespace",
            namespace,
            "--follow",
            "--interval",
            "0.3",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follow.stdout or ()), daemon=True)
    reader.start()  # the table, printed again every 0.3 s (however slow the CLI is to start)
    try:
        wait_for(lambda: "".join(seen).count("alive") >= 2, 30, "the table printed twice")
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(timeout=10)
        reader.join(timeout=10)
    out = "".join(seen)
    assert out.count("alive") >= 2, out
