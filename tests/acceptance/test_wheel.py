"""The built wheel works outside the source tree: SQL and migrations ship inside it.

The wheel goes into a fresh venv (no network: ``--no-index``, no build
isolation); its dependencies come from the test venv through a ``.pth`` line
appended after the new venv's own site-packages, so ``stem_pg`` itself can only
come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from stem_pg.schema.migrate import current_revision, head_revision
from tests.helpers import REPO_ROOT, drop_schema, unique_namespace

SHIPPED = (
    "stem_pg/py.typed",
    "stem_pg/_data/sql/jobs.sql",
    "stem_pg/_data/sql/catalog.sql",
    "stem_pg/_data/migrations/env.py",
    "stem_pg/_data/migrations/script.py.mako",
    "stem_pg/_data/migrations/versions/0001_queue_engine.py",
    "stem_pg/_data/sql/dashboard.sql",
    "stem_pg/dashboard/templates/overview.html",
    "stem_pg/dashboard/static/htmx.min.js",
    "stem_pg/dashboard/static/uPlot.iife.min.js",
    "stem_pg/dashboard/static/uPlot.min.css",
    "stem_pg/dashboard/static/licenses/htmx-2.0.4-LICENSE.txt",
    "stem_pg/dashboard/static/licenses/uPlot-1.6.31-LICENSE.txt",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stem(self) -> Path:
        return self.venv / "bin" / "stem"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", REPO_ROOT, cwd=root)
    (wheel,) = (root / "dist").glob("stem_pg-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root)
    _run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel, cwd=root)
    site = _run(
        venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
    )
    dependencies = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "zz_test_dependencies.pth").write_text(dependencies + "\n")
    return Installed(wheel, venv)


def _clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEM_") and k != "PYTHONPATH"}
    return {**env, **variables}


def test_wheel_ships_sql_and_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert set(SHIPPED) <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_installed_package_comes_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    code = (
        "import stem_pg, stem_pg.db.resources as r;"
        "print(stem_pg.__file__); print(r.migrations_dir()); print(r.sql_dir())"
    )
    out = _run(installed.python, "-c", code, cwd=tmp_path, env=_clean_env()).stdout.split()
    assert all(line.startswith(str(installed.venv)) for line in out), out
    assert not any(line.startswith(str(REPO_ROOT)) for line in out), out


def test_installed_stem_migrates_from_anywhere(
    installed: Installed, tmp_path: Path, database_url: str
) -> None:
    ns = unique_namespace()
    offline = _run(installed.stem, "migrate", "--namespace", ns, "--sql", cwd=tmp_path, env=_clean_env())
    assert f'CREATE TABLE "{ns}".jobs' in offline.stdout
    try:
        env = _clean_env(STEM_BROKER_URL=database_url)
        online = _run(installed.stem, "migrate", "--namespace", ns, cwd=tmp_path, env=env)
        assert "done" in online.stdout
        assert current_revision(database_url, ns) == head_revision()
        health = _run(installed.stem, "health", cwd=tmp_path, env=env)
        assert ns in health.stdout
    finally:
        drop_schema(database_url, ns)
