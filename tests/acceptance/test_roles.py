"""``stem roles``: a producer, a worker and an operator role per namespace, each able to do its
job and nothing more (real worker processes, each role through log-in users)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.client.control import Control
from stem_pg.config.settings import StemConfig
from tests.acceptance.controlapp import APP
from tests.acceptance.workerapp import Workers, query, scalar
from tests.helpers import REPO_ROOT, migrated_namespace, run_stem, stem_env, url_as, wait_for

Db = psycopg.Connection[Any]
KINDS = ("producer", "worker", "operator")
BEAT = [sys.executable, "-m", "stem_pg", "beat", "--app", "tests.acceptance.beatapp:app"]


@pytest.fixture
def logins(db: Db, database_url: str, namespace: str) -> Iterator[dict[str, str]]:
    """``stem roles`` run on the namespace, and one log-in user per role: their URLs by role."""
    superuser = db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not superuser or not superuser[0]:
        pytest.skip("needs a superuser to create roles")
    users = {kind: f"stem_{kind}_{uuid.uuid4().hex[:8]}" for kind in KINDS}
    groups = [f"{namespace}_{kind}" for kind in KINDS]
    try:
        done = run_stem(database_url, "roles", "--namespace", namespace)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"role {g}: ok" for g in groups]
        for kind, user in users.items():
            db.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(user), sql.Identifier(f"{namespace}_{kind}")
                )
            )
        # The test application's own tables (its handlers write a ledger) are the worker's too.
        ledger = db.execute("SELECT to_regclass(%s)", (f'"{namespace}".ledger',)).fetchone()
        if ledger and ledger[0]:
            db.execute(
                sql.SQL("GRANT SELECT, INSERT ON {}.ledger, {}.dupes TO {}").format(
                    sql.Identifier(namespace),
                    sql.Identifier(namespace),
                    sql.Identifier(f"{namespace}_worker"),
                )
            )
        yield {kind: url_as(database_url, user) for kind, user in users.items()}
    finally:
        for role in [*users.values(), *groups]:
            if db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def as_worker(logins: dict[str, str], namespace: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes that connect as the worker role's user."""
    spawner = Workers(logins["worker"], namespace, tmp_path)
    try:
        yield spawner
    finally:
        spawner.cleanup()


def alive_workers(db: Db, ns: str) -> set[str]:
    return {r[0] for r in query(db, ns, "SELECT id FROM {ns}.workers WHERE stopped_at IS NULL")}


@pytest.mark.timeout(90)
def test_a_producer_enqueues_and_reads_results_but_cannot_stop_a_worker_or_read_elsewhere(
    capp: Stem, db: Db, namespace: str, database_url: str, logins: dict[str, str], as_worker: Workers
) -> None:
    proc = as_worker.start(app=APP)
    wait_for(lambda: len(alive_workers(db, namespace)) == 1, 20, "the worker")
    producer = Stem(logins["producer"], namespace=namespace, config=StemConfig())
    try:
        assert producer.enqueue("ctl.step").get(timeout=20) == proc.pid
        assert len(producer.enqueue_many([("ctl.step", {}) for _ in range(3)])) == 3
        debounced = [producer.enqueue("ctl.step", debounce=0.3, key="k") for _ in range(2)]
        assert debounced[0] == debounced[1] and debounced[1].get(timeout=20) == proc.pid
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            Control(logins["producer"], namespace).shutdown("hard", timeout=2)
        refused = run_stem(
            logins["producer"], "worker", "shutdown", "--namespace", namespace, "--mode", "hard"
        )
        assert refused.returncode != 0 and "permission denied" in refused.stderr
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            Control(logins["producer"], namespace).pause("default", timeout=2)
        with (
            migrated_namespace(database_url) as other,
            psycopg.connect(logins["producer"]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(sql.SQL("SELECT * FROM {}.jobs").format(sql.Identifier(other)))
    finally:
        producer.close()
    wait_for(lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == 5, 20, "five results")
    assert proc.alive() and len(alive_workers(db, namespace)) == 1
    assert "permission denied" not in as_worker.logs(None), as_worker.logs()


@pytest.mark.timeout(90)
def test_a_worker_cannot_replay_dead_letters_and_an_operator_can(
    stem: Stem, db: Db, namespace: str, logins: dict[str, str], as_worker: Workers
) -> None:
    proc = as_worker.start()
    wait_for(lambda: len(alive_workers(db, namespace)) == 1, 20, "the worker")
    job = stem.enqueue("acc.fail_always")
    wait_for(lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters"), 30, "a dead letter")

    refused = run_stem(logins["worker"], "dlq", "replay", "--namespace", namespace)
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    assert scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters WHERE replayed_at IS NULL") == 1
    refused = run_stem(logins["worker"], "worker", "shutdown", "--namespace", namespace, "--mode", "hard")
    assert refused.returncode != 0 and "permission denied" in refused.stderr

    replayed = run_stem(logins["operator"], "dlq", "replay", "--namespace", namespace)
    assert replayed.returncode == 0, replayed.stderr
    assert job.id in replayed.stdout
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.dead_letters") == 2, 30, "it dies again"
    )
    paused = run_stem(logins["operator"], "worker", "pause", "--namespace", namespace, "--queue", "default")
    assert paused.returncode == 0, paused.stderr
    stopped = run_stem(
        logins["operator"], "worker", "shutdown", "--namespace", namespace, "--mode", "hard", "--json"
    )
    assert stopped.returncode == 0, stopped.stderr
    assert list(json.loads(stopped.stdout)["replies"].values()) == [{"shutdown": "hard"}]
    assert proc.wait(timeout=20) == 0
    assert "permission denied" not in as_worker.logs(None), as_worker.logs()


@pytest.mark.timeout(60)
def test_the_worker_role_runs_beat_on_schedules_only_an_operator_may_change(
    db: Db, namespace: str, logins: dict[str, str], tmp_path: Path
) -> None:
    schedule = tmp_path / "schedules.yaml"
    schedule.write_text("tick:\n  task: beat.tick\n  spec: every:1s\n")
    refused = run_stem(
        logins["worker"], "schedule", "apply", "--file", str(schedule), "--namespace", namespace
    )
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    applied = run_stem(
        logins["operator"], "schedule", "apply", "--file", str(schedule), "--namespace", namespace
    )
    assert applied.returncode == 0, applied.stderr

    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            [*BEAT, "--namespace", namespace, "--lease", "2", "--max-sleep", "0.5"],
            cwd=REPO_ROOT,
            env=stem_env(STEM_BROKER_URL=logins["worker"]),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.jobs WHERE task = 'beat.tick'") >= 2,
            20,
            "two ticks fired by beat",
        )
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(timeout=15)
    assert "permission denied" not in log.read_text(), log.read_text()
