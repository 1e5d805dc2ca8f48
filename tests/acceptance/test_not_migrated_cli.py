"""A namespace that is not migrated, or is at an older revision: every command that uses it
prints one line saying which ``stem migrate`` fixes it and exits 1 (no psycopg traceback);
workers and beat check the revision before they start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stem_pg.schema.migrate import migrate
from tests.helpers import run_stem

APP = "tests.acceptance.nsapp:app"

COMMANDS: list[tuple[str, ...]] = [
    ("worker", "run", "--app", APP),
    ("beat", "--app", APP),
    ("worker", "status"),
    ("worker", "ping", "--timeout", "1"),
    ("worker", "stats", "--timeout", "1"),
    ("worker", "inspect", "--timeout", "1"),
    ("worker", "shutdown"),
    ("worker", "pause", "-Q", "q"),
    ("worker", "resume", "-Q", "q"),
    ("worker", "revoke", "-T", "some-task"),
    ("tasks", "show", "some-task"),
    ("tasks", "enqueue", "ns.echo"),
    ("tasks", "enqueue", "ns.echo", "--app", APP),
    ("dlq", "list"),
    ("dlq", "show", "some-task"),
    ("dlq", "replay", "some-task"),
    ("dlq", "purge", "--yes"),
    ("schedule", "list"),
    ("schedule", "show", "nightly"),
    ("schedule", "apply", "-f", "{schedules}"),
    ("schedule", "delete", "nightly"),
    ("schedule", "disable", "nightly"),
    ("wf", "start", "ns.flow", "--app", APP),
    ("wf", "ls"),
    ("wf", "show", "some-run"),
    ("wf", "cancel", "some-run"),
    ("wf", "emit", "topic"),
    ("wf", "waiters"),
]


def expected(namespace: str) -> str:
    return (
        f"error: namespace {namespace!r} is not migrated (or is at an older revision);"
        f" run: stem migrate --namespace {namespace}"
    )


def assert_one_line(run: subprocess.CompletedProcess[str], line: str) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines() == [line], run.stderr
    assert run.returncode == 1, run.stderr


@pytest.mark.timeout(300)
def test_every_command_on_an_unmigrated_namespace_says_how_to_migrate_it(
    database_url: str, fresh_namespace: str, tmp_path: Path
) -> None:
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text("nightly:\n  task: ns.echo\n  schedule: '0 3 * * *'\n")
    for n, command in enumerate(COMMANDS):
        args = [a.format(schedules=schedules) for a in command]
        # The first in a fresh interpreter, the rest forked from a pre-imported one (run_cli).
        run = run_stem(database_url, *args, "--namespace", fresh_namespace, timeout=30, real_process=n == 0)
        assert "Traceback" not in run.stderr, (args, run.stderr)
        assert run.stderr.splitlines() == [expected(fresh_namespace)], (args, run.stderr)
        assert run.returncode == 1, (args, run.stderr)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [("worker", "run", "--app", APP), ("beat", "--app", APP)])
def test_workers_and_beat_refuse_a_namespace_at_an_older_revision(
    database_url: str, fresh_namespace: str, command: tuple[str, ...]
) -> None:
    migrate(database_url, fresh_namespace, "upgrade", "0007")
    run = run_stem(database_url, *command, "--namespace", fresh_namespace, timeout=30)
    assert_one_line(run, expected(fresh_namespace))
