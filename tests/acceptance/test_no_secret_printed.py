"""No secret ever printed (issue 14, item 4): a password planted in eleven malformed or
unreachable database URLs never reaches the output of any CLI command that takes a URL.

Every command of ``stem --help`` with a ``--url`` option or an ``--app`` (whose ``Stem()``
reads STEM_BROKER_URL) runs as a real process, once with the URL in STEM_BROKER_URL and,
where it has the option, once with ``--url``. A one-shot command exits non-zero with one
``error:`` line and no traceback. ``worker run`` and ``beat`` keep retrying a database they
cannot reach (issue 13): they log warnings, none with the password, and stop on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import typer
from psycopg.conninfo import conninfo_to_dict

from stem_pg.cli import app as cli_app
from stem_pg.worker.supervisor import REPLACEMENT_VARIABLE
from tests.cli_forkserver import ForkedProcess, spawn
from tests.helpers import REPO_ROOT, stem_env

SECRET = "zq9Pl4ntedS3cret"
APP = "tests.acceptance.secretsapp:app"
LONG_RUNNING = {("worker", "run"), ("beat",)}
#: Commands that never connect: given a well-formed URL they succeed (printing no password).
OFFLINE = {("tasks", "ls")}
#: The shapes that are valid URLs (they fail only when connecting).
WELL_FORMED = {"connection-refused", "wrong-database"}
SCHEDULE_FILE = "nightly:\n  task: secrets.noop\n  spec: every:1h\n"
ID = str(uuid.UUID(int=1))


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def url_shapes(database_url: str) -> dict[str, str]:
    """The eleven shapes, each holding SECRET; the last two are valid URLs that fail to connect."""
    info = conninfo_to_dict(database_url)
    host = quote(str(info.get("host") or "127.0.0.1"), safe="")
    port, user = info.get("port") or 5432, info.get("user") or "postgres"
    server = f"{host}:{port}"
    return {
        "bad-percent-escape": f"postgresql://stem:{SECRET}%ZZ@{server}/test",
        "unknown-query-parameter": f"postgresql://stem:{SECRET}@{server}/test?foo=bar",
        "space": f"postgresql://stem:{SECRET} x@{server}/test",
        "bad-port": f"postgresql://stem:{SECRET}@{host}:54x32/test",
        "unknown-scheme": f"mysql://stem:{SECRET}@{server}/test",
        "empty-host-with-options": f"postgresql://stem:{SECRET}@?dbname=test&sslmode=bogus",
        "unterminated-ipv6-bracket": f"postgresql://stem:{SECRET}@[::1:{port}/test",
        "conninfo-password-bad-syntax": f"host={host} port={port} password='{SECRET} dbname=test",
        "query-password-bad-escape": f"postgresql://stem@{server}/test?password={SECRET}%G1",
        "connection-refused": f"postgresql://stem:{SECRET}@127.0.0.1:{closed_port()}/test",
        "wrong-database": f"postgresql://{user}:{SECRET}@{server}/no_such_db_{uuid.uuid4().hex[:8]}",
    }


def url_commands() -> Iterator[tuple[tuple[str, ...], bool]]:
    """(command path, has --url) of every command that takes a database URL, from the CLI's tree."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], bool]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, (*path, name))
            return
        names = {param.name for param in command.params}
        if "url" in names or "app_spec" in names:
            yield path, "url" in names

    yield from walk(typer.main.get_command(cli_app), ())


def arguments(path: tuple[str, ...], schedule_file: Path) -> list[str]:
    """What the command needs besides a URL; read-only flags where it could change anything."""
    root = typer.main.get_command(cli_app)
    command = root
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    fillers = {
        "app_spec": ["--app", APP],
        "queue": ["--queue", "default"],
        "task": ["--task", ID],
        "task_id": [ID],
        "name": ["secrets.noop"],
        "key": ["1"],
        "file": ["--file", str(schedule_file)],
        "run_id": [ID],
        "step": ["--step", "s"],
        "topic": ["t"],
        "view": ["queues"],
    }
    args: list[str] = []
    for param in command.params:
        if param.required:
            assert param.name in fillers, f"stem {' '.join(path)}: add a filler for {param.name}"
            args += fillers[str(param.name)]
    extra: dict[tuple[str, ...], list[str]] = {
        ("dlq", "replay"): ["--dry-run"],
        ("dlq", "purge"): ["--dry-run"],
        ("schedule", "apply"): ["--dry-run"],
        ("schedule", "dry-run"): ["--name", "nightly"],
    }
    return [*args, *extra.get(path, [])]


@dataclass(frozen=True)
class Run:
    label: str
    returncode: int | None
    stdout: str
    stderr: str
    #: It keeps running (a worker, beat) or needs no database: exit 0 is no failure then.
    may_succeed: bool = False


def run_once(
    label: str,
    argv: list[str],
    env: dict[str, str],
    long_running: bool,
    may_succeed: bool,
    *,
    logs: Path,
    real_process: bool = True,
) -> Run:
    """One command in a session of its own: a fresh interpreter, or (``real_process=False``) a
    child forked from the pre-imported server of tests/cli_forkserver.py, a second faster."""
    out_path, err_path = logs / f"{uuid.uuid4().hex}.out", logs / f"{uuid.uuid4().hex}.err"
    process: subprocess.Popen[str] | ForkedProcess
    with out_path.open("w") as out, err_path.open("w") as err, open(os.devnull, "rb") as stdin:
        if real_process:
            process = subprocess.Popen(
                [sys.executable, "-m", "stem_pg", *argv],
                cwd=REPO_ROOT, env=env, stdout=out, stderr=err, text=True, start_new_session=True,
            )  # fmt: skip
        else:
            process = spawn(
                argv, env=env, cwd=REPO_ROOT, stdin=stdin.fileno(), stdout=out.fileno(), stderr=err.fileno(),
                new_session=True,
            )  # fmt: skip
    try:
        if long_running:  # it retries a database it cannot reach: wait for its warning, then stop it
            deadline = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < deadline:
                if "cannot connect" in err_path.read_text():
                    break
                time.sleep(0.2)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=90)
    finally:
        hung = process.poll() is None
        if hung:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    code = None if hung else process.returncode  # a hung command is a complaint: "exit None"
    return Run(label, code, out_path.read_text(), err_path.read_text(), may_succeed)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING|ERROR) ")


def only_log_lines(lines: list[str]) -> bool:
    """Whether ``lines`` are log records; a record's further lines (the start-up banners) are
    indented under its first one."""
    return all(LOG_LINE.match(line) or (n and line.startswith("  ")) for n, line in enumerate(lines))


def complaints(run: Run) -> list[str]:
    """What is wrong with one run's output (empty: all good)."""
    output = run.stdout + run.stderr
    found = []
    if SECRET.lower() in output.lower():
        found.append("printed the password")
    if "Traceback" in output:
        found.append("printed a traceback")
    lines = run.stderr.strip().splitlines()
    if run.may_succeed and run.returncode == 0:
        if not only_log_lines(lines):
            found.append("printed something other than log lines")
    elif run.returncode in (0, None) or run.stdout or len(lines) != 1 or not lines[0].startswith("error: "):
        found.append(f"did not fail with one 'error:' line (exit {run.returncode})")
    shown = f"\n    stdout: {run.stdout[-600:]!r}\n    stderr: {run.stderr[-600:]!r}"
    return [f"{run.label}: {complaint}{shown}" for complaint in found]


def test_every_command_is_covered() -> None:
    commands = {path for path, _ in url_commands()}
    assert {("health",), ("migrate",), ("worker", "run"), ("worker", "status"), ("beat",)} <= commands
    assert {("schedule", "list"), ("tasks", "enqueue"), ("dlq", "purge"), ("wf", "ls")} <= commands
    assert len(commands) >= 30


SHAPES = list(url_shapes("postgresql://postgres@127.0.0.1:5432/test"))


@pytest.mark.parametrize("shape", SHAPES)
def test_no_command_prints_the_password(shape: str, database_url: str, tmp_path: Path) -> None:
    url = url_shapes(database_url)[shape]
    schedule_file = tmp_path / "schedules.yaml"
    schedule_file.write_text(SCHEDULE_FILE)
    env = stem_env(STEM_BROKER_URL=url, PYTHONUNBUFFERED="1")
    plain = stem_env(PYTHONUNBUFFERED="1")
    jobs: list[tuple[str, list[str], dict[str, str], bool, bool]] = []
    for path, has_url in url_commands():
        argv = [*path, *arguments(path, schedule_file)]
        long_running = path in LONG_RUNNING
        may_succeed = shape in WELL_FORMED and (long_running or path in OFFLINE)
        jobs.append((f"STEM_BROKER_URL stem {' '.join(argv)}", argv, env, long_running, may_succeed))
        if has_url:
            jobs.append((f"stem {' '.join(argv)} --url", [*argv, "--url", url], plain, False, may_succeed))
    # The first command of every shape, and the worker and beat of the first shape, start a fresh
    # interpreter (the real entry point); the others are forked, as like a real process as that
    # (tests/acceptance/test_cli_forkserver.py compares them).
    real = [n == 0 or (shape == SHAPES[0] and job[3]) for n, job in enumerate(jobs)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(
            pool.map(lambda job, fresh: run_once(*job, logs=tmp_path, real_process=fresh), jobs, real)
        )
    problems = [c for run in runs for c in complaints(run)]
    took = time.monotonic() - started
    assert not problems, f"{len(problems)} of {len(runs)} runs ({took:.0f} s):\n" + "\n".join(problems)


def test_log_lines_of_a_worker_that_cannot_connect_hide_it(tmp_path: Path) -> None:
    """A worker that ran before (one that replaces a retired worker: a fresh start refuses
    an unreachable database, below) retries a refused port, logging warnings; the
    application module logs the URL, a conninfo string and the bare password: every line
    comes out masked."""
    url = f"postgresql://stem:{SECRET}@127.0.0.1:{closed_port()}/test"
    env = stem_env(STEM_BROKER_URL=url, SECRETS_APP_LOG="1", SECRETS_APP_PASSWORD=SECRET)
    env[REPLACEMENT_VARIABLE] = "1"
    run = run_once("stem worker run", ["worker", "run", "--app", APP], env, True, True, logs=tmp_path)
    assert SECRET.lower() not in (run.stdout + run.stderr).lower(), run.stderr
    assert "Traceback" not in run.stderr
    assert "connection lost: cannot connect to the database" in run.stderr
    assert_app_lines_masked(run.stderr, url)
    assert only_log_lines(run.stderr.splitlines()), run.stderr


@pytest.mark.parametrize("command", [["worker", "run"], ["beat"]], ids=["worker", "beat"])
def test_a_worker_or_beat_starting_on_an_unreachable_database_fails_in_one_masked_line(
    command: list[str], tmp_path: Path
) -> None:
    url = f"postgresql://stem:{SECRET}@127.0.0.1:{closed_port()}/test"
    env = stem_env(STEM_BROKER_URL=url, SECRETS_APP_LOG="1", SECRETS_APP_PASSWORD=SECRET)
    run = run_once("stem " + " ".join(command), [*command, "--app", APP], env, False, False, logs=tmp_path)
    assert SECRET.lower() not in (run.stdout + run.stderr).lower(), run.stderr
    assert "Traceback" not in run.stderr and run.returncode == 1, run.stderr
    assert_app_lines_masked(run.stderr, url)
    *logged, last = run.stderr.splitlines()
    assert only_log_lines(logged), run.stderr
    assert last.startswith(f"error: cannot connect to the database at 127.0.0.1:{url.rsplit(':', 1)[1]}")


def assert_app_lines_masked(stderr: str, url: str) -> None:
    assert f"database: postgresql://stem:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in stderr
    assert "conninfo: host=db port=5432 password=*** dbname=app" in stderr
    assert "the vault returned '***'" in stderr
