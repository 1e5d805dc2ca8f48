"""The worker and beat tell you what they do (issue 15): a line per failure, retry and dead
letter, a summary per interval, ``--log-format json`` with the task's fields on every task
line (forked processes too), a start-up banner that shows no password, and beat's fires."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stem_pg.client.app import Stem
from stem_pg.client.schedules import Schedules
from stem_pg.config.schedule_file import load_schedule_yaml
from tests.acceptance.logsapp import make_logs_app
from tests.acceptance.workerapp import WorkerProcess, Workers, query, scalar
from tests.helpers import REPO_ROOT, run_cli, stem_env, wait_for

APP = "tests.acceptance.logsapp:app"
SECRET = "Pw4LogsBanner9"
#: A process that does not stop dumps its threads' stacks on SIGABRT (see ``stop``).
DIAGNOSE = {"PYTHONFAULTHANDLER": "1"}
TASKS = ("logs.fail", "logs.flaky", "logs.reject", "logs.chatty", "logs.ok", "logs.nobody")
BEAT = [sys.executable, "-m", "stem_pg", "beat", "--app", "tests.acceptance.beatapp:app"]
TASK_FIELDS = ("task", "id", "queue", "attempt", "worker", "namespace")


@pytest.fixture
def lapp(database_url: str, namespace: str) -> Iterator[Stem]:
    application = make_logs_app(database_url, namespace)
    yield application
    application.close()


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` added to its user (the test server trusts, so it still connects)."""
    parts = urllib.parse.urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = (user.partition(":")[0] or "postgres") + f":{password}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def run_all(lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str, **start: Any) -> str:
    """Enqueue one job of each TASKS, run a worker until all are finished, stop it; its log."""
    ids = {name: lapp.enqueue(name, {}).id for name in TASKS}
    proc = workers.start(app=APP, env=DIAGNOSE, **start)
    wait_for(
        lambda: scalar(db, namespace, "SELECT count(*) FROM {ns}.results") == len(TASKS),
        30,
        f"{len(TASKS)} results\n{workers.logs()}",
        interval=0.1,
    )
    stop(proc)
    text = proc.log(tail=None)
    for name, job_id in ids.items():
        text = text.replace(job_id, f"<{name}>")
    return text


def stop(proc: WorkerProcess) -> None:
    proc.signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # where does it hang? (PYTHONFAULTHANDLER: stacks on SIGABRT)
        os.killpg(proc.pid, signal.SIGABRT)
        time.sleep(2)
        raise AssertionError(f"the worker did not stop\n{proc.log(tail=None)}") from None
    assert code == 0, proc.log()


@pytest.mark.timeout(90)
def test_text_log_has_a_line_per_failure_retry_and_dead_letter(
    lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    log = run_all(
        lapp,
        workers,
        db,
        namespace,
        poll_interval=0.05,
        extra=["--log-summary-interval", "0.5", "--claim-unregistered"],
    )
    lines = log.splitlines()

    def line(pattern: str) -> str:
        found = [text for text in lines if re.search(pattern, text)]
        assert found, f"no line matches {pattern!r} in\n{log}"
        return found[0]

    failure = line(r"ERROR stem_pg\.worker\.tasks: task logs\.fail\[<logs\.fail>\] failed on attempt 1:")
    assert failure.endswith("ValueError: the answer is not 41")
    assert lines[lines.index(failure) + 1] == "Traceback (most recent call last):"
    line(
        r"INFO stem_pg\.worker\.tasks: task logs\.flaky\[<logs\.flaky>\] retry: attempt 1 failed"
        r" \(ConnectionError: the first try never works\); attempt 2 runs in 0\.10s, at 20\d\d-"
    )
    line(
        r"WARNING stem_pg\.worker\.tasks: task logs\.fail\[<logs\.fail>\] dead-lettered"
        r" \(max_retries_exceeded\) after attempt 1: ValueError: the answer is not 41$"
    )
    line(r"WARNING stem_pg\.worker\.tasks: task logs\.reject\[<logs\.reject>\] dead-lettered \(rejected\)")
    line(
        r"ERROR stem_pg\.worker\.tasks: received unregistered task logs\.nobody\[<logs\.nobody>\]"
        r" on queue default: dead-lettered \(unregistered_task\)"
    )
    line(r"WARNING logsapp: a line of the handler's own")
    line(r"INFO stem_pg\.worker\.summary: worker \S+: processed \d+ in the last [\d.]+s: \d+ succeeded")
    assert "succeeded in" not in log, "a success is a DEBUG line"
    counted = [re.search(r"processed (\d+) in", text) for text in lines]
    assert sum(int(m.group(1)) for m in counted if m) == len(TASKS) + 1, log  # flaky ran twice


@pytest.mark.timeout(90)
def test_json_log_lines_carry_the_task_fields_from_every_process(
    lapp: Stem, workers: Workers, db: psycopg.Connection[Any], namespace: str
) -> None:
    log = run_all(
        lapp,
        workers,
        db,
        namespace,
        processes=2,
        extra=[
            "--log-format",
            "json",
            "--loglevel",
            "debug",
            "--log-summary-interval",
            "0.5",
            "--claim-unregistered",
        ],
    )
    records = []
    for text in log.splitlines():
        try:
            records.append(json.loads(text))
        except ValueError:
            raise AssertionError(f"not a JSON line: {text!r}\n{log}") from None
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    task_lines = [r for r in records if r["logger"] == "stem_pg.worker.tasks" or r["logger"] == "logsapp"]
    assert {r["task"] for r in task_lines} == set(TASKS), log
    base = next(r for r in records if r.get("event") == "banner")["worker"]
    for record in task_lines:
        assert all(record.get(key) is not None for key in TASK_FIELDS), record
        assert record["namespace"] == namespace
        assert record["queue"] == "default"
        assert re.fullmatch(re.escape(base) + r"-[01]", record["worker"]), record
        assert record["id"] == f"<{record['task']}>"
    events = {(r["task"], r.get("event")) for r in task_lines}
    assert {
        ("logs.fail", "failed"),
        ("logs.fail", "dead_letter"),
        ("logs.flaky", "retry"),
        ("logs.flaky", "succeeded"),
        ("logs.reject", "dead_letter"),
        ("logs.nobody", "dead_letter"),
        ("logs.ok", "succeeded"),
        ("logs.chatty", None),  # the handler's own line
    } <= events, events
    failed = next(r for r in task_lines if r.get("event") == "failed")
    assert failed["exc_type"] == "ValueError" and failed["attempt"] == 1
    assert failed["traceback"].endswith("ValueError: the answer is not 41"), failed
    retry = next(r for r in task_lines if r.get("event") == "retry")
    assert (retry["attempt"], retry["delay"]) == (1, 0.1) and retry["eta"], retry
    summaries = [r for r in records if r.get("event") == "summary"]
    assert sum(r["processed"] for r in summaries) == len(TASKS) + 1, summaries
    assert all(r.get("worker") and r.get("namespace") == namespace for r in summaries), summaries


@pytest.mark.timeout(60)
def test_banner_names_the_namespace_database_and_tasks_and_no_password(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    workers = Workers(with_password(database_url, SECRET), namespace, tmp_path)
    try:
        # A fresh interpreter, as a user starts it: its whole output is the banner and log lines.
        proc = workers.start(app=APP, env=DIAGNOSE, extra=["--queue", "default"], real_process=True)
        wait_for(lambda: "consuming default" in proc.log(), 20, f"the worker to start\n{proc.log()}")
        stop(proc)
        json_proc = workers.start(app=APP, env=DIAGNOSE, extra=["--log-format", "json"], processes=2)
        wait_for(lambda: json_proc.log().count("consuming default") == 2, 20, json_proc.log())
        stop(json_proc)
    finally:
        workers.cleanup()
    text, lines = proc.log(tail=None), json_proc.log(tail=None)
    assert SECRET not in text + lines
    banner = text[: text.index("consuming default")]
    assert re.search(r"INFO stem_pg\.worker\.banner: stem_pg worker v\S+ ready to start", banner), text
    assert f"namespace:   {namespace}\n" in banner
    assert re.search(r"database:    postgresql://postgres:\*\*\*@[^\s]+\n", banner), banner
    assert "queues:      default [priority 0-9]\n" in banner
    assert "processes:   1\n" in banner
    assert "tasks (5):\n" in banner
    for name in ("logs.chatty", "logs.fail", "logs.flaky", "logs.ok", "logs.reject"):
        assert f"    . {name}\n" in banner
    [fields] = [r for r in map(json.loads, lines.splitlines()) if r.get("event") == "banner"]
    assert fields["namespace"] == namespace and fields["processes"] == 2
    assert fields["database"].startswith("postgresql://postgres:***@")
    assert fields["tasks"] == ["logs.chatty", "logs.fail", "logs.flaky", "logs.ok", "logs.reject"]


@pytest.mark.timeout(60)
def test_beat_prints_a_banner_and_logs_each_fire(database_url: str, namespace: str, tmp_path: Path) -> None:
    Schedules(database_url, namespace).apply(
        load_schedule_yaml("tick:\n  task: beat.tick\n  spec: every:1s\n")
    )
    log_path = tmp_path / "beat.log"
    with log_path.open("wb") as out:
        beat = subprocess.Popen(
            [*BEAT, "--namespace", namespace, "--max-sleep", "0.5", "--log-format", "json"],
            cwd=REPO_ROOT,
            env=stem_env(STEM_BROKER_URL=with_password(database_url, SECRET), **DIAGNOSE),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: '"event": "fire"' in log_path.read_text(), 20, f"a fire\n{log_path.read_text()}")
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=20)
        except subprocess.TimeoutExpired:
            beat.send_signal(signal.SIGABRT)
            time.sleep(2)
            raise AssertionError(f"beat did not stop\n{log_path.read_text()}") from None
    text = log_path.read_text()
    assert SECRET not in text
    records = [json.loads(line) for line in text.splitlines()]
    banner = next(r for r in records if r.get("event") == "banner")
    assert banner["namespace"] == namespace and banner["database"].startswith("postgresql://postgres:***@")
    fire = next(r for r in records if r.get("event") == "fire")
    assert (fire["level"], fire["schedule"], fire["task"], fire["namespace"]) == (
        "INFO",
        "tick",
        "beat.tick",
        namespace,
    )
    job_ids = {row[0] for row in db_ids(database_url, namespace)}
    assert fire["id"] in job_ids
    assert f"schedule 'tick' fired: task beat.tick, job {fire['id']}" == fire["message"]


def db_ids(url: str, namespace: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return query(conn, namespace, "SELECT id FROM {ns}.jobs")


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--log-format", "xml"], {}, 2, "'xml' is not one of text, json"),
        (["--loglevel", "loud"], {}, 2, "'loud' is not one of debug, info, warning, error, critical"),
        ([], {"STEM_LOG_FORMAT": "xml"}, 1, "error: STEM_LOG_FORMAT: 'xml' is not one of text, json"),
    ],
)
def test_bad_log_options_fail_with_one_line(
    database_url: str, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    for command in (["worker", "run"], ["beat"]):
        done = run_cli(*command, "--app", APP, *args, env=stem_env(STEM_BROKER_URL=database_url, **env))
        assert done.returncode == code, done.stderr
        flat = " ".join(re.sub("[│╭╮╰╯─]", " ", done.stderr).split())  # typer's usage box, unwrapped
        assert message in flat, done.stderr
        assert "Traceback" not in done.stderr
        if code == 1:
            assert done.stderr.strip() == message


def test_log_settings_come_from_the_environment_unless_given(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    """STEM_LOG_FORMAT=json applies; STEM_LOG_LEVEL=error is overridden by ``--loglevel info``."""
    workers = Workers(database_url, namespace, tmp_path)
    try:
        proc = workers.start(
            app=APP,
            env={"STEM_LOG_FORMAT": "json", "STEM_LOG_LEVEL": "error", **DIAGNOSE},
            extra=["--loglevel", "info"],
        )
        wait_for(lambda: "consuming default" in proc.log(), 20, f"the worker to start\n{proc.log()}")
        stop(proc)
    finally:
        workers.cleanup()
    records = [json.loads(line) for line in proc.log(tail=None).splitlines()]
    assert any(r["level"] == "INFO" and "consuming default" in r["message"] for r in records), records
