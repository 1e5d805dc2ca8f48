"""Calls from a shell: ``stem tasks enqueue`` applies the task's own options (from --app,
else from what a live worker registered, else one clear refusal), a ``--wait`` timeout,
a typo'd task name and bad arguments are one line each; ``stem dlq replay`` of an unknown
id exits 1; ``stem worker resume`` names the pause it lifted; ``stem worker inspect --json``
shows progress as a JSON object."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import psycopg
import pytest

from tests.acceptance.callsapp import APP
from tests.acceptance.workerapp import Workers, query, scalar, wait_registered
from tests.helpers import run_stem, wait_for

Db = psycopg.Connection[Any]


def stem(database_url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_stem(database_url, *args, "--namespace", namespace)


def one_error_line(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single stderr line of a refused command (no traceback), asserted."""
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def job_rows(db: Db, namespace: str) -> list[tuple[Any, ...]]:
    return query(db, namespace, "SELECT task, priority, max_retries FROM {ns}.jobs ORDER BY seq")


@pytest.mark.timeout(90)
def test_enqueue_without_app_takes_the_options_a_live_worker_registered_or_refuses(
    workers: Workers, database_url: str, namespace: str, db: Db
) -> None:
    refused = stem(database_url, namespace, "tasks", "enqueue", "calls.options")
    assert one_error_line(refused) == (
        f"error: no live worker of namespace {namespace!r} registers task 'calls.options', so its"
        " options (queue, priority, max_retries) are unknown; pass --app package.module:app"
    )
    assert job_rows(db, namespace) == []

    proc = workers.start(app=APP)
    wait_registered(db, namespace, {proc.pid})
    later = stem(database_url, namespace, "tasks", "enqueue", "calls.options", "--countdown", "1h")
    assert later.returncode == 0, later.stderr
    with_app = stem(
        database_url, namespace, "tasks", "enqueue", "calls.options", "--countdown", "1h", "--app", APP
    )
    assert with_app.returncode == 0, with_app.stderr
    assert job_rows(db, namespace) == [("calls.options", 7, 0), ("calls.options", 7, 0)]


def test_enqueue_wait_timeout_typos_and_bad_arguments_are_one_line_each(
    database_url: str, namespace: str, db: Db
) -> None:
    def enqueue(*args: str) -> subprocess.CompletedProcess[str]:
        return stem(database_url, namespace, "tasks", "enqueue", *args, "--app", APP)

    waited = enqueue("calls.options", "--task-id", "waits", "--wait", "0.5")
    assert waited.stdout == "waits\n"
    assert one_error_line(waited) == "error: task waits did not finish within 0.5s (state: queued)"

    typo = enqueue("calls.optoins")
    assert typo.returncode == 0 and typo.stdout.strip()
    assert one_error_line(typo, 0) == (
        "warning: task 'calls.optoins' is not registered here; did you mean 'calls.options'?"
    )

    bad = enqueue("calls.options", "--kwargs", '{"m": 1}')
    assert one_error_line(bad) == "error: task 'calls.options': got an unexpected keyword argument 'm'"
    queue = enqueue("calls.options", "--queue", "")
    assert queue.returncode != 0 and "Traceback" not in queue.stderr
    assert [row[0] for row in job_rows(db, namespace)] == ["calls.options", "calls.optoins"]


def test_dlq_replay_of_an_unknown_id_exits_1_with_one_line(database_url: str, namespace: str) -> None:
    unknown = stem(database_url, namespace, "dlq", "replay", "12345")
    assert one_error_line(unknown) == (
        "error: no dead letter '12345' (give its id or its task id, as `stem dlq list` shows them)"
    )
    everything = stem(database_url, namespace, "dlq", "replay")  # no id: nothing to do is fine
    assert everything.returncode == 0 and everything.stdout == "replayed 0 dead letters\n"


def test_resume_names_the_pause_it_lifted(database_url: str, namespace: str) -> None:
    def worker(*args: str) -> subprocess.CompletedProcess[str]:
        return stem(database_url, namespace, "worker", *args, "--queue", "default", "--timeout", "0.2s")

    paused = worker("pause", "--reason", "maintenance")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.splitlines()[:2] == ["queue 'default' paused", "reason: maintenance"]
    resumed = worker("resume")
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert re.fullmatch(
        r"queue 'default' resumed \(paused since [0-9-]+ [0-9:]+ UTC by cli: maintenance\)", lines[0]
    )
    assert "reason: maintenance" not in lines, lines  # a resume has no reason of its own
    again = worker("resume")
    assert again.stdout.splitlines()[0] == "queue 'default' was not paused; nothing changed"


@pytest.mark.timeout(90)
def test_inspect_json_shows_progress_as_an_object(
    workers: Workers, database_url: str, namespace: str, db: Db
) -> None:
    proc = workers.start(app=APP, poll_interval=0.05)
    wait_registered(db, namespace, {proc.pid})
    enqueued = stem(database_url, namespace, "tasks", "enqueue", "calls.progress", "--kwargs", '{"steps": 2}')
    assert enqueued.returncode == 0, enqueued.stderr
    task_id = enqueued.stdout.strip()
    progress = "SELECT progress FROM {ns}.task_states WHERE id = %s"
    last = {"done": 2, "of": 2}
    wait_for(
        lambda: scalar(db, namespace, progress, [task_id]) == last, 15, f"the progress\n{workers.logs()}"
    )
    inspected = stem(database_url, namespace, "worker", "inspect", "--json")
    assert inspected.returncode == 0, inspected.stderr
    (reply,) = json.loads(inspected.stdout)["replies"].values()
    (active,) = reply["active"]
    assert (active["id"], active["progress"]) == (task_id, last)
