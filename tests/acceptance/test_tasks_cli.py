"""``stem tasks`` from a shell: list the registered tasks, enqueue one and wait for its
result from a real worker, show its state; bad input is refused clearly."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, scalar
from tests.helpers import run_stem

WORKER_APP = "tests.acceptance.workerapp:app"


def stem_tasks(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stem(database_url, "tasks", *args)


@pytest.mark.timeout(120)
def test_tasks_ls_enqueue_wait_and_show(
    stem: Stem, workers: Workers, database_url: str, namespace: str, db: psycopg.Connection[Any]
) -> None:
    listed = stem_tasks(database_url, "ls", "--app", WORKER_APP, "--json")
    assert listed.returncode == 0, listed.stderr
    tasks = {t["name"]: t for t in json.loads(listed.stdout)}
    assert {"acc.step", "acc.once", "acc.fail_always"} <= set(tasks)
    assert (tasks["acc.fail_always"]["kind"], tasks["acc.fail_always"]["max_retries"]) == ("sync", 2)
    assert tasks["acc.step"]["queue"] == "default"

    workers.start(poll_interval=0.05)
    ran = stem_tasks(
        database_url, "enqueue", "acc.step", "--kwargs", '{"n": 7}', "--app", WORKER_APP,
        "--namespace", namespace, "--task-id", "from-the-shell", "--wait", "30",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr + workers.logs()
    task_id, result = ran.stdout.split("\n", 1)
    assert task_id == "from-the-shell"
    assert json.loads(result)["attempt"] == 1

    shown = stem_tasks(database_url, "show", task_id, "--namespace", namespace, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert (detail["task"], detail["state"], detail["attempts"]) == ("acc.step", "succeeded", 1)
    table = stem_tasks(database_url, "show", task_id, "--namespace", namespace)
    assert "succeeded" in table.stdout and "acc.step" in table.stdout

    later = stem_tasks(database_url, "enqueue", "acc.step", "--countdown", "1h", "--namespace", namespace)
    assert later.returncode == 0, later.stderr
    waits = scalar(
        db, namespace, "SELECT not_before - now() > interval '59 minutes' FROM {ns}.jobs WHERE id = %s",
        [later.stdout.strip()],
    )  # fmt: skip
    assert waits is True


def test_tasks_refuses_bad_input_clearly(stem: Stem, database_url: str, namespace: str) -> None:
    def enqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return stem_tasks(database_url, "enqueue", "acc.step", *args, "--namespace", namespace)

    not_object = enqueue("--kwargs", "[1]")
    assert not_object.returncode == 2 and "--kwargs" in not_object.stderr, not_object.stderr
    not_json = enqueue("--kwargs", "{n: 1}")
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr, not_json.stderr
    countdown = enqueue("--countdown", "soon")
    assert countdown.returncode == 2 and "--countdown" in countdown.stderr, countdown.stderr
    missing = stem_tasks(database_url, "show", "no-such-task", "--namespace", namespace)
    assert missing.returncode == 1 and "no task 'no-such-task'" in missing.stderr, missing.stderr
    assert scalar_jobs(database_url, namespace) == 0  # nothing was enqueued by the refused calls


def test_tasks_enqueue_refuses_input_beyond_the_limits_in_one_line(
    stem: Stem, database_url: str, namespace: str
) -> None:
    def enqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return stem_tasks(
            database_url, "enqueue", "acc.step", *args, "--namespace", namespace, "--app", WORKER_APP
        )

    too_deep = enqueue("--kwargs", '{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    assert too_deep.returncode == 2 and "Traceback" not in too_deep.stderr, too_deep.stderr[-2000:]
    assert "nested too deeply (at most 100 levels)" in too_deep.stderr
    deep = enqueue("--kwargs", '{"a": ' + "[" * 200 + "]" * 200 + "}")
    assert deep.returncode == 1, deep.stderr[-2000:]
    assert deep.stderr == "error: acc.step: argument 'a' is nested more than 100 levels deep\n"
    endless = enqueue("--countdown", "99999999999999999999d")
    assert endless.returncode == 2 and "is longer than the" in endless.stderr, endless.stderr
    queue = enqueue("--queue", "q" * 100_000)
    assert queue.returncode == 1 and "Traceback" not in queue.stderr, queue.stderr[-2000:]
    assert queue.stderr.splitlines() == [
        f"error: acc.step: queue '{'q' * 54}...q' is 100000 characters long; the limit is 255"
    ]
    assert scalar_jobs(database_url, namespace) == 0


def scalar_jobs(database_url: str, namespace: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(scalar(conn, namespace, "SELECT count(*) FROM {ns}.jobs"))


@pytest.mark.timeout(60)
def test_a_wait_that_runs_out_is_one_line(stem: Stem, database_url: str, namespace: str) -> None:
    """No worker runs: ``--wait`` ends after its seconds with one line and exit 1, no traceback."""
    for command in (
        ["tasks", "enqueue", "acc.step", "--kwargs", '{"n": 1}', "--app", WORKER_APP, "--wait", "0.5"],
        ["wf", "start", "wf.nobody", "--wait", "0.5"],
    ):
        done = run_stem(database_url, *command, "--namespace", namespace)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert done.stderr.startswith("error: ") and "did not" in done.stderr, done.stderr
