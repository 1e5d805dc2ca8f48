"""A running worker process holds none of the CLI's modules nor the migration tooling.

``stem worker run`` checks its options, then replaces itself (same pid) with the lean
worker process (``stem_pg.worker.lean``). Checked from outside on a real process: its
command line, and the shared libraries it has mapped (pydantic, which Typer uses to
coerce options, and SQLAlchemy come with compiled extensions of their own).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg

from stem_pg.client.app import Stem
from tests.acceptance.workerapp import Workers, wait_registered
from tests.helpers import wait_for

NEVER_MAPPED = ("pydantic_core", "sqlalchemy")


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
