"""``sql/schema.sql`` is exactly what the migrations build, so it can be read instead of them.

The test migrates a fresh namespace, dumps it with ``pg_dump --schema-only`` (of the
server's own major version), normalises the dump as ``snapshot()`` describes and compares
it with the file; a migration that builds anything else fails with a unified diff.

After changing a migration on purpose, regenerate the file (and review its diff):

    STEM_SCHEMA_SNAPSHOT=update pytest tests/integration/test_schema_snapshot.py

pg_dump is looked for where the embedded server looks for initdb (PATH, ``pg_config
--bindir``, /usr/lib/postgresql/*/bin, the pgserver wheel); without one of the server's
major version the test is skipped and says why.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from stem_pg.core.dsn import redact
from stem_pg.db.queries import load_queries
from stem_pg.schema.migrate import head_revision, migrate

SCHEMA_SQL = Path(__file__).resolve().parents[2] / "sql" / "schema.sql"
PLACEHOLDER = "@NAMESPACE@"
UPDATE_VARIABLE = "STEM_SCHEMA_SNAPSHOT"
REGENERATE = f"{UPDATE_VARIABLE}=update pytest tests/integration/test_schema_snapshot.py"

HEADER = """\
-- The schema of one stem_pg namespace, as migrations/ builds it up to revision {revision}.
--
-- {placeholder} stands for the namespace's quoted schema name ("prod-us-east"). It is not
-- SQL, so it stands for nothing else: generating this file checks that the dump held none.
--
-- Generated, not written: the pg_dump --schema-only (PostgreSQL {major}) of a freshly
-- migrated namespace, without owners, privileges, SET lines, pg_dump's comments and
-- alembic's version table. stem_pg never runs this file: migrations build the schema,
-- and tests/integration/test_schema_snapshot.py fails when they build something else.
-- After changing a migration, regenerate it and review the diff:
--
--     {regenerate}

"""
_MAJOR_LINE = re.compile(r"^-- Generated, not written: the pg_dump --schema-only \(PostgreSQL (\d+)\)", re.M)

# Outside function bodies: what pg_dump adds around the DDL, for a restore.
_NOISE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config\(|\\restrict |\\unrestrict )")
_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _candidate_dirs() -> Iterator[Path]:
    """Where PostgreSQL programs may live, in the embedded server's order."""
    on_path = shutil.which("pg_dump")
    if on_path:
        yield Path(on_path).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            yield Path(found.stdout.strip())
    numbered = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(numbered, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])[::-1]
    from stem_pg.dev.embedded import pgserver_bin_dir

    wheel = pgserver_bin_dir()
    if wheel is not None:
        yield wheel


def _major(pg_dump: Path) -> int | None:
    """The major version ``pg_dump --version`` reports (Debian's wrapper picks one too)."""
    try:
        out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\) (\d+)", out.stdout)
    return int(found[1]) if found else None


def find_pg_dump(server_major: int) -> Path:
    """A pg_dump of the server's major version: another one writes the DDL differently."""
    seen: dict[Path, int | None] = {}
    for directory in _candidate_dirs():
        pg_dump = directory / "pg_dump"
        if pg_dump in seen or not os.access(pg_dump, os.X_OK):
            continue
        seen[pg_dump] = _major(pg_dump)
        if seen[pg_dump] == server_major:
            return pg_dump
    found = ", ".join(f"{path} ({major})" for path, major in seen.items()) or "none"
    pytest.skip(f"no pg_dump of PostgreSQL {server_major} (the server's version); found: {found}")


def _server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


def normalise(dump: str, namespace: str) -> str:
    """The DDL of ``dump`` alone, with ``namespace`` replaced by the placeholder.

    Drops pg_dump's comments, SET lines and ``\\restrict`` keys outside dollar-quoted
    bodies (comments inside a function stay), and folds runs of blank lines into one.
    """
    if PLACEHOLDER in dump:
        raise AssertionError(f"the dump already holds {PLACEHOLDER!r}: pick another placeholder")
    kept: list[str] = []
    open_quote: str | None = None
    for line in dump.splitlines():
        if open_quote is None and _NOISE.match(line):
            continue
        for quote in _DOLLAR_QUOTE.findall(line):
            if open_quote is None:
                open_quote = quote
            elif quote == open_quote:
                open_quote = None
        if line.strip() or (kept and kept[-1]):
            kept.append(line.rstrip())
    quoted = sql.Identifier(namespace).as_string(None)
    assert quoted.startswith('"'), "a namespace pg_dump always quotes is replaced whole"
    text = "\n".join(kept).strip().replace(quoted, PLACEHOLDER)
    assert namespace not in text, f"{namespace!r} is left unquoted somewhere in the dump"
    return text + "\n"


def snapshot(url: str, namespace: str) -> str:
    """``sql/schema.sql`` as the migrations build it, dumped from migrated ``namespace``."""
    major = _server_major(url)
    pg_dump = find_pg_dump(major)
    args = [
        str(pg_dump),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        "--no-tablespaces",
        "--no-security-labels",
        f"--schema={sql.Identifier(namespace).as_string(None)}",
        f"--exclude-table={sql.Identifier(namespace, 'alembic_version').as_string(None)}",
        f"--dbname={url}",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"pg_dump failed (exit {done.returncode}): {redact(done.stderr)}")
    header = HEADER.format(
        revision=head_revision(), placeholder=PLACEHOLDER, major=major, regenerate=REGENERATE
    )
    return header + normalise(done.stdout, namespace)


def test_schema_sql_is_what_the_migrations_build(database_url: str, fresh_namespace: str) -> None:
    migrate(database_url, fresh_namespace)
    built = snapshot(database_url, fresh_namespace)
    if os.environ.get(UPDATE_VARIABLE) == "update":
        SCHEMA_SQL.write_text(built, encoding="utf-8")
    written = SCHEMA_SQL.read_text(encoding="utf-8")
    recorded = _MAJOR_LINE.search(written)
    server = _server_major(database_url)
    if recorded and int(recorded[1]) != server:
        pytest.skip(f"sql/schema.sql comes from PostgreSQL {recorded[1]}, the server is {server}")
    if built != written:
        diff = difflib.unified_diff(
            written.splitlines(), built.splitlines(), "sql/schema.sql", "migrated", lineterm=""
        )
        pytest.fail(
            "sql/schema.sql differs from the migrated schema:\n"
            + "\n".join(diff)
            + f"\n\nIf the migrations are right, regenerate it: {REGENERATE}",
            pytrace=False,
        )


def test_schema_sql_holds_no_named_query() -> None:
    """``sql/`` is also where named queries are loaded from; the snapshot adds none."""
    assert SCHEMA_SQL.is_file()
    assert not [q.name for q in load_queries().values() if q.file == SCHEMA_SQL.name]
