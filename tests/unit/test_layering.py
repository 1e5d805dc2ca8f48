"""The pure core imports nothing heavy: no driver, no ORM, no CLI, no YAML, no alembic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import stem_pg.core

FORBIDDEN = ("psycopg", "psycopg_pool", "sqlalchemy", "typer", "click", "rich", "yaml", "alembic")
CORE = Path(stem_pg.core.__file__).parent

# Runs in a fresh interpreter: this test process has long since imported everything.
PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def core_modules() -> list[str]:
    found = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    return ["stem_pg.core", *(f"stem_pg.core.{name}" for name in found)]


def modules_after_importing(names: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *names], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in FORBIDDEN]


def test_core_modules_are_found() -> None:
    assert {"stem_pg.core.states", "stem_pg.core.namespaces", "stem_pg.core.routing"} <= set(core_modules())


def test_core_imports_nothing_heavy() -> None:
    loaded = modules_after_importing(core_modules())
    assert heavy(loaded) == []
    outer = [m for m in loaded if m.startswith("stem_pg.") and not m.startswith("stem_pg.core")]
    assert outer == [], "the core must not import the layers built on it"


def test_the_probe_sees_heavy_imports() -> None:
    assert "psycopg" in heavy(modules_after_importing(["stem_pg.db.queries"]))


def test_an_app_and_its_worker_load_no_opentelemetry_until_instrumented() -> None:
    runtime = ["stem_pg", "stem_pg.client.app", "stem_pg.worker.worker", "stem_pg.beat.scheduler"]
    assert not [m for m in modules_after_importing(runtime) if m.startswith("opentelemetry")]
    assert "opentelemetry.trace" in modules_after_importing(["stem_pg.tracing"])
