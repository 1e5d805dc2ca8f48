"""A running worker process holds none of the CLI's modules nor the migration tooling, and
the ``stem worker run`` command before it holds neither the app nor the driver.

``stem worker run`` parses its options, then replaces itself (same pid) with the lean
worker process (``stem_pg.worker.lean``), which loads the app. Checked from outside on a
real process: its command line, and the shared libraries it has mapped (pydantic, which
Typer uses to coerce options, SQLAlchemy and PyYAML come with compiled extensions of their
own); and the modules the command holds at the moment it execs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, wait_registered
from tests.helpers import stem_env, wait_for

#: yaml: PyYAML's C extension (yaml/_yaml...so), which only a routing or schedule file needs.
NEVER_MAPPED = ("pydantic_core", "sqlalchemy", "yaml/_yaml")

#: Runs ``stem worker run`` with an ``os.execv`` that, instead of starting the lean process,
#: prints the modules the command holds at that moment.
AT_EXEC = """
import json, os, sys
def at_exec(*args):
    print(json.dumps({"argv": list(args[1]), "modules": sorted(sys.modules)}), flush=True)
    os._exit(0)
os.execv = at_exec
sys.argv = ["stem", *sys.argv[1:]]
from stem_pg.cli import main
main()
"""


def test_a_running_worker_is_the_lean_process(
    workers: Workers, db: psycopg.Connection[Any], namespace: str, database_url: str
) -> None:
    proc = workers.start(real_process=True, concurrency=200, app="tests.acceptance.leanapp:app")
    try:  # two interpreter start-ups (the command, then the lean process) on a busy machine
        wait_registered(db, namespace, {proc.pid}, timeout=60)
    except AssertionError:
        raise AssertionError(proc.log()) from None
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    assert b"stem_pg.worker.lean" in cmdline, cmdline
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert [name for name in NEVER_MAPPED if name in maps] == []
    # The plan (it holds the database URL) left the environment task code hands on.
    app = Stem(database_url, namespace=namespace)
    try:
        inherited = app.enqueue("lean.environment").get(timeout=30)
    finally:
        app.close()
    assert "PATH" in inherited
    assert "_STEM_WORKER_PLAN" not in inherited
    proc.signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    wait_for(lambda: "stopped" in proc.log(), 5, "the worker's last log line")


def test_the_command_execs_before_it_loads_the_app_or_the_driver(database_url: str, namespace: str) -> None:
    """Loading the app (the driver, the client, the user's modules) is the lean process's
    job: the command holding them and Typer's modules at once peaked above the worker."""
    env = stem_env(STEM_BROKER_URL=database_url, STEM_NAMESPACE=namespace)
    env.pop("_STEM_WORKER_IN_PLACE", None)
    app = "tests.acceptance.leanapp:app"
    done = subprocess.run(
        [sys.executable, "-c", AT_EXEC, "worker", "run", "--app", app, "--concurrency", "200"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["argv"][-2:] == ["-m", "stem_pg.worker.lean"]
    loaded = set(seen["modules"])
    held = sorted(loaded & {"tests.acceptance.leanapp", "psycopg", "psycopg_pool", "stem_pg.client.app"})
    assert held == [], held
    assert "stem_pg.worker.worker" not in loaded


def test_a_bad_app_is_one_line_from_the_lean_process(database_url: str, namespace: str) -> None:
    """The app loads in the lean process now: its errors still end it with one line."""
    env = stem_env(STEM_BROKER_URL=database_url, STEM_NAMESPACE=namespace)
    env.pop("_STEM_WORKER_IN_PLACE", None)
    for spec, message in (
        ("tests.acceptance.no_such_module:app", "error: --app: cannot import module"),
        ("tests.acceptance.leanapp:nothing", "is NoneType, not a stem_pg.Stem application"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "stem_pg", "worker", "run", "--app", spec],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=os.getcwd(),
        )
        assert done.returncode == 1
        assert message in done.stderr
        assert "Traceback" not in done.stderr
