"""``stem migrate`` (and plain ``alembic``) as real processes: schemas, exit codes, clean errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from stem_pg.schema.migrate import current_revision, head_revision
from tests.helpers import MIGRATED_TABLES, REPO_ROOT, drop_schema, run_cli, stem_env, unique_namespace

TABLES = MIGRATED_TABLES | {"alembic_version"}
UNREACHABLE_URL = "postgresql://postgres:secret@127.0.0.1:1/test"
EVIL_NAMESPACE = 'a"; drop schema stem; --'


def stem(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, timeout=90)


def flat(text: str) -> str:
    """Usage errors come in a box that wraps lines: drop the frame and join the words."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return stem_env(STEM_BROKER_URL=database_url)


@pytest.fixture
def prod_namespace(database_url: str) -> Iterator[str]:
    """A unique namespace in the style of the docs' ``prod-us-east``; dropped afterwards."""
    name = f"prod-us-east-{uuid.uuid4().hex[:6]}"
    yield name
    drop_schema(database_url, name)


def tables(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (schema,),
        ).fetchall()
    return {row[0] for row in rows}


def schema_exists(database_url: str, schema: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row == (1,)


def test_migrate_current_health_and_downgrade(
    tmp_path: Path, env: dict[str, str], database_url: str, prod_namespace: str
) -> None:
    ns = prod_namespace
    up = stem("migrate", "--namespace", ns, cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    assert tables(database_url, ns) == TABLES

    current = stem("migrate", "current", "--namespace", ns, cwd=tmp_path, env=env)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == f"{ns}: {head_revision()} (head is {head_revision()})"

    health = stem("health", "--json", cwd=tmp_path, env=env)
    assert health.returncode == 0, health.stderr
    listed = {row["namespace"]: row for row in json.loads(health.stdout)["namespaces"]}
    assert listed[ns] == {"namespace": ns, "revision": head_revision(), "up_to_date": True}

    down = stem("migrate", "downgrade", "base", "--namespace", ns, cwd=tmp_path, env=env)
    assert down.returncode == 0, down.stderr
    assert not schema_exists(database_url, ns)
    gone = stem("migrate", "current", "--namespace", ns, cwd=tmp_path, env=env)
    assert gone.returncode == 0, gone.stderr
    assert "not migrated" in gone.stdout


def test_namespace_from_environment(tmp_path: Path, database_url: str, prod_namespace: str) -> None:
    env = stem_env(STEM_BROKER_URL=database_url, STEM_NAMESPACE=prod_namespace)
    result = stem("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert current_revision(database_url, prod_namespace) == head_revision()


def test_sql_needs_no_database(tmp_path: Path) -> None:
    env = stem_env()  # no STEM_BROKER_URL at all
    up = stem("migrate", "--namespace", "offline-ns", "--sql", cwd=tmp_path, env=env)
    assert up.returncode == 0, up.stderr
    assert 'CREATE SCHEMA IF NOT EXISTS "offline-ns"' in up.stdout
    assert 'CREATE TABLE "offline-ns".jobs' in up.stdout
    assert 'CREATE INDEX jobs_claim_idx ON "offline-ns".jobs' in up.stdout
    assert '"offline-ns".alembic_version' in up.stdout
    down = stem("migrate", "downgrade", "base", "--namespace", "offline-ns", "--sql", cwd=tmp_path, env=env)
    assert down.returncode == 0, down.stderr
    assert 'DROP TABLE "offline-ns".jobs' in down.stdout


def test_concurrent_migrations_take_turns(tmp_path: Path, env: dict[str, str], database_url: str) -> None:
    ns = unique_namespace()
    command = [sys.executable, "-m", "stem_pg", "migrate", "--namespace", ns]
    lock_key = "SELECT hashtextextended('stem_pg:migrate:' || %s, 0)"
    try:
        # Hold the namespace's migration lock first: both processes must queue on it
        # (proof that they take it), then run one after the other once it is free.
        with psycopg.connect(database_url, autocommit=True) as holder:
            key = holder.execute(lock_key, [ns]).fetchone()[0]  # type: ignore[index]
            holder.execute("SELECT pg_advisory_lock(%s)", [key])
            processes = [
                subprocess.Popen(
                    command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                for _ in range(2)
            ]
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            deadline = time.monotonic() + 60
            while holder.execute(waiting).fetchone() != (2,):
                assert time.monotonic() < deadline, "the two migrations never queued on the lock"
                assert all(p.poll() is None for p in processes), "a migration ran without the lock"
                time.sleep(0.1)
            assert tables(database_url, ns) == set(), "nothing may be created while the lock is held"
            holder.execute("SELECT pg_advisory_unlock(%s)", [key])
        outcomes = [(p.wait(timeout=90), p.stderr.read().decode() if p.stderr else "") for p in processes]
        for process in processes:
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()
        assert [code for code, _ in outcomes] == [0, 0], outcomes
        assert current_revision(database_url, ns) == head_revision()
        assert tables(database_url, ns) == TABLES
    finally:
        drop_schema(database_url, ns)


def test_plain_alembic_from_the_repository(tmp_path: Path, database_url: str) -> None:
    ns = unique_namespace()
    alembic = str(Path(sys.executable).with_name("alembic"))
    url_flag = ["-x", f"url={database_url}"]
    try:
        # As the README has it (URL from STEM_BROKER_URL), then with -x url=... as well.
        for action, revision, flags, env in (
            ("upgrade", "head", [], stem_env(STEM_BROKER_URL=database_url)),
            ("downgrade", "base", url_flag, stem_env()),
            ("upgrade", "head", url_flag, stem_env()),
        ):
            result = subprocess.run(
                [alembic, "-x", f"namespace={ns}", *flags, action, revision],
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                env=env,
                timeout=90,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        assert current_revision(database_url, ns) == head_revision()
        assert tables(database_url, ns) == TABLES
    finally:
        drop_schema(database_url, ns)


@pytest.mark.parametrize("extra", [[], ["--sql"], ["current"], ["downgrade", "base"]])
def test_bad_namespace_is_a_usage_error_before_connecting(tmp_path: Path, extra: list[str]) -> None:
    # The URL points nowhere: had the command tried to connect it would fail
    # with a connection error, not with the namespace message.
    env = stem_env(STEM_BROKER_URL=UNREACHABLE_URL)
    result = stem("migrate", *extra, "--namespace", EVIL_NAMESPACE, cwd=tmp_path, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert EVIL_NAMESPACE in flat(result.stderr)
    assert "--namespace" in result.stderr
    assert "connect" not in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_namespace_in_environment_names_the_variable(tmp_path: Path) -> None:
    env = stem_env(STEM_BROKER_URL=UNREACHABLE_URL, STEM_NAMESPACE=EVIL_NAMESPACE)
    result = stem("migrate", cwd=tmp_path, env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "STEM_NAMESPACE" in result.stderr
    assert EVIL_NAMESPACE in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variables", "args", "named"),
    [
        ({"STEM_BROKER_URL": "mysql://u:secret@h/db"}, ["migrate", "-n", "abc"], "STEM_BROKER_URL"),
        ({"STEM_BROKER_URL": "mysql://u:secret@h/db"}, ["health"], "STEM_BROKER_URL"),
        ({"STEM_BROKER_URL": "postgresql://u:secret@h:99999/db"}, ["health"], "STEM_BROKER_URL"),
        (
            {"STEM_BROKER_URL": "postgresql://u@h/db", "STEM_RESULT_BACKEND_URL": "redis://:secret@h/0"},
            ["worker", "status"],
            "STEM_RESULT_BACKEND_URL",
        ),
        ({"STEM_PREFETCH_MULTIPLIER": "-1"}, ["worker", "status"], "STEM_PREFETCH_MULTIPLIER"),
        ({"STEM_DEFAULT_MAX_RETRIES": "many"}, ["worker", "status"], "STEM_DEFAULT_MAX_RETRIES"),
        ({"STEM_WORKER_NAMESPACE": "Prod"}, ["worker", "status"], "STEM_WORKER_NAMESPACE"),
    ],
)
def test_bad_environment_fails_cleanly(
    tmp_path: Path, variables: dict[str, str], args: list[str], named: str
) -> None:
    env = stem_env(**{"STEM_BROKER_URL": UNREACHABLE_URL, **variables})
    result = stem(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ")
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [["migrate", "-n", "abc"], ["migrate", "current", "-n", "abc"], ["health"]])
def test_unreachable_database_fails_cleanly(tmp_path: Path, args: list[str]) -> None:
    result = stem(*args, cwd=tmp_path, env=stem_env(STEM_BROKER_URL=UNREACHABLE_URL))
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert re.search(r"cannot connect to the database", result.stderr), result.stderr
    assert "secret" not in result.stderr + result.stdout
