"""``stem --version``, and ``--help`` that starts fast and is never cut short."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.helpers import REPO_ROOT, run_cli, stem_env

HEAVY = ("alembic", "sqlalchemy", "psycopg", "psycopg_pool", "rich")

# Renders the help in-process, then names the heavy modules it loaded (one per line).
_LOADED = """
import sys
from stem_pg.cli import app
try:
    app(sys.argv[1:], prog_name="stem")
except SystemExit:
    pass
heavy = {HEAVY!r}
print("\\n".join(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))), file=sys.stderr)
"""


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version", env=stem_env(), real_process=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"stem_pg {version('stem_pg')}\n"


@pytest.mark.parametrize(
    "args",
    [["--help"], ["worker", "run", "--help"], ["dlq", "--help"], ["doctor", "--help"], ["observe", "--help"]],
)
def test_help_loads_no_database_library(args: list[str]) -> None:
    code = _LOADED.format(HEAVY=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT, env=stem_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "Usage: stem" in result.stdout, result.stdout + result.stderr
    assert result.stderr.split() == []


def test_help_is_wrapped_not_cut_at_80_columns() -> None:
    env = stem_env(COLUMNS="80")
    run = run_cli("worker", "run", "--help", env=env)
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "Defaults to STEM_WORKER_QUEUES, then the default queue." in text
    assert "--prefetch-multiplier" in text
    assert max(len(line) for line in run.stdout.splitlines()) <= 80
    top = run_cli("--help", env=env)
    assert "schema with alembic (the version table lives inside it)." in " ".join(top.stdout.split())
