"""The CLI tests fork ``stem`` from a pre-imported server (tests/cli_forkserver.py): what such
a child prints, and how it exits, is what a fresh ``python -m stem_pg`` prints and how it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stem_pg.worker.supervisor import REPLACEMENT_VARIABLE
from tests.cli_forkserver import spawn
from tests.helpers import REPO_ROOT, run_cli, stem_env

REFUSED = "postgresql://stem:pw@127.0.0.1:1/test"

CASES = [
    ("--version",),
    ("no-such-command",),  # a usage error: exit 2
    ("dlq",),  # a group without a command: its help, exit 2
    ("worker", "run", "--help"),
    ("dlq", "list"),  # cannot connect: one error line, exit 1
    ("tasks", "enqueue", "x", "--kwargs", "{not json"),
    ("worker", "run", "--app", "tests.acceptance.nsapp:app"),
    ("routing", "validate", "no/such/file.yaml"),
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(case) for case in CASES])
def test_a_forked_command_prints_and_exits_as_a_fresh_interpreter(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    env = stem_env(STEM_BROKER_URL=REFUSED, COLUMNS="80", PYTHONPATH=str(REPO_ROOT))
    real = run_cli(*args, env=env, cwd=tmp_path, real_process=True)
    forked = run_cli(*args, env=env, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_importing_what_the_server_preloads_prints_nothing() -> None:
    """What a fresh interpreter would print while importing is the one thing a forked child
    cannot show: there is nothing."""
    code = "from tests.cli_forkserver import preload; preload()"
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT, env=stem_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_a_forked_child_is_a_process_of_its_own(tmp_path: Path) -> None:
    """Its own pid and session; a signal ends it as it ends a real process; its exit code comes back."""
    log = tmp_path / "worker.log"
    env = stem_env(STEM_BROKER_URL=REFUSED, PYTHONUNBUFFERED="1")
    env[REPLACEMENT_VARIABLE] = "1"  # one that ran before: it retries instead of refusing to start
    with log.open("wb") as out, open(os.devnull, "rb") as stdin:
        child = spawn(
            ["worker", "run", "--app", "tests.acceptance.secretsapp:app"],
            env=env, cwd=REPO_ROOT, stdin=stdin.fileno(), stdout=out.fileno(), stderr=out.fileno(),
            new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "cannot connect" not in log.read_text() and time.monotonic() < deadline:
            assert child.poll() is None, log.read_text()
            time.sleep(0.05)
        assert os.getsid(child.pid) == child.pid
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0, log.read_text()
    finally:
        child.kill()
