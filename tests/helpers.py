"""Test helpers shared across the suites: a worker in a thread, waiting, the CLI as a subprocess,
extra namespaces, and the data several test modules read."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from stem_pg.client.app import Stem
from stem_pg.schema.migrate import migration_sql
from stem_pg.worker import Worker, WorkerSettings
from tests.cli_forkserver import spawn

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The tables a migrated namespace holds (besides alembic's version table), by migration.
MIGRATED_TABLES = frozenset(
    {"jobs", "results", "dead_letters", "workers"}  # 0001: the queue engine
    | {"schedules", "schedule_fires", "locks"}  # 0002: beat
    | {  # 0003: the control plane
        "broadcast_messages",
        "broadcast_subscriptions",
        "broadcast_fanout",
        "revokes",
        "paused_queues",
        "control_replies",
    }
    | {"canvases", "canvas_members", "wf_runs", "wf_steps", "wf_waiters"}  # 0004: workflows
    | {"control_commands"}  # 0007: control commands as rows
    | {"limiters"}  # 0011: rate and concurrency limits
    | {"result_minutes", "result_rollup"}  # 0019: the dashboard chart's per-minute rollup
)

# The example from Stem's "Routing Configuration" page.
ROUTING_EXAMPLE = """\
default_queue:
  alias: default
  queue: primary
  fallbacks:
    - secondary
queues:
  primary:
    exchange: jobs
    routing_key: jobs.default
    priority_range: [0, 9]
  secondary: {}
broadcasts:
  control:
    delivery: at-least-once
  updates:
    delivery: at-most-once
routes:
  - match:
      task: reports.*
    target:
      type: queue
      name: primary
  - match:
      task: control.*
    target:
      type: broadcast
      name: control
"""


@contextmanager
def running_worker(app: Stem, **settings: object) -> Iterator[Worker]:
    """A real Worker on its own event loop thread; stopped gracefully on exit."""
    options: dict[str, object] = {
        "queues": ("default",),
        "poll_interval": 0.2,
        "shutdown_grace": 5.0,
    }
    options.update(settings)
    worker = Worker(app, WorkerSettings(**options))  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.request_stop)
        thread.join(timeout=20)
        assert not thread.is_alive(), "worker did not stop"


def wait_for(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "the condition", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stem_env(**variables: str | None) -> dict[str, str]:
    """This process's environment without any STEM_* variable, plus ``variables`` (None: leave unset).

    A developer's own STEM_NAMESPACE or STEM_BROKER_URL must never reach a process a test starts.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("STEM_")}
    env.update({key: value for key, value in variables.items() if value is not None})
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | str = REPO_ROOT,
    timeout: float = 60,
    real_process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``python -m stem_pg *args`` as a process of its own; a failing exit code is the test's to check.

    By default the process is forked from a server that has imported stem_pg and its libraries
    once (tests/cli_forkserver.py: a second less per command); ``real_process`` starts a fresh
    interpreter instead, which each CLI matrix keeps for some cases to prove the real entry point.
    """
    command = [sys.executable, "-m", "stem_pg", *args]
    if real_process:
        return subprocess.run(
            command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
        )
    with (
        open(os.devnull, "rb") as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        process = spawn(
            args, env=env, cwd=cwd, stdin=stdin.fileno(), stdout=stdout.fileno(), stderr=stderr.fileno()
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        stdout.seek(0)
        stderr.seek(0)
        out, err = (stream.read().decode("utf-8", "replace") for stream in (stdout, stderr))
    # Text mode, as subprocess.run(text=True) reads it: universal newlines.
    out, err = (text.replace("\r\n", "\n").replace("\r", "\n") for text in (out, err))
    return subprocess.CompletedProcess(command, process.returncode or 0, out, err)


def run_stem(
    database_url: str,
    *args: str,
    cwd: Path | str = REPO_ROOT,
    timeout: float = 60,
    real_process: bool = False,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """``python -m stem_pg *args`` from the repository root, with the database in
    ``STEM_BROKER_URL``, ``env`` added and no other ``STEM_*`` variable of ours (see run_cli)."""
    environment = stem_env(STEM_BROKER_URL=database_url, **env)
    return run_cli(*args, env=environment, cwd=cwd, timeout=timeout, real_process=real_process)


def drop_schema(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def unique_namespace(prefix: str = "t") -> str:
    """A namespace name no other test uses (``prefix-<10 hex digits>``); nothing is created."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


#: The namespace the migration script is rendered for, then renamed (see apply_migrations).
_SCRIPT_NAMESPACE = "stem-tests-script"


@functools.cache
def migration_script() -> str:
    """The SQL of all migrations, for ``_SCRIPT_NAMESPACE``; alembic renders it with global
    state, so call this first from the main thread (tests.namespace_stock does)."""
    return migration_sql(_SCRIPT_NAMESPACE)


def apply_migrations(database_url: str, namespace: str) -> None:
    """Migrate ``namespace`` to the head by running the SQL ``stem migrate --sql`` prints,
    rendered once per test process: the schema, and alembic's version table at the head,
    that ``migrate()`` builds (tests/integration/test_migration_script.py compares them),
    in one round trip and without alembic's per-call start-up. Tests of migrating itself
    call ``migrate()``."""
    quoted = sql.Identifier(namespace).as_string(None)
    script = migration_script().replace(sql.Identifier(_SCRIPT_NAMESPACE).as_string(None), quoted)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(script.encode())


@contextmanager
def migrated_namespace(database_url: str, prefix: str = "t") -> Iterator[str]:
    """A second unique namespace (``prefix-<hex>``), migrated; dropped afterwards."""
    name = unique_namespace(prefix)
    apply_migrations(database_url, name)
    try:
        yield name
    finally:
        drop_schema(database_url, name)


def url_as(database_url: str, user: str) -> str:
    """``database_url`` with ``user`` (and no password) instead of its own user."""
    parts = urllib.parse.urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{urllib.parse.quote(user)}@{host}"))
