"""The shape of the package: layering contracts hold, SQL stays behind the stores, modules stay small.

These read the source tree (no database): they fail when a change puts a module at the
package top level, grows one past the size the house allows, calls a named query outside
``stem_pg/db/stores``, or reads a database row by position outside the store layer.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import stem_pg
from stem_pg.db.queries import load_queries

PACKAGE = Path(stem_pg.__file__).parent
ROOT = PACKAGE.parent
STORES = PACKAGE / "db" / "stores"
#: The package top level holds only the entry points and compatibility aliases.
TOP_LEVEL_ALLOWED = {"__init__.py", "__main__.py", "control.py"}
MAX_MODULE_LINES = 450
#: ``row[0]``, ``run[-1]``...: a database row read by position.
POSITIONAL_ROW = re.compile(r"\b(?:row|run|record)\[-?\d+\]")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_lint_imports_contracts_are_kept() -> None:
    """The import-linter contracts of pyproject.toml (layers, a pure core, no cycles)."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_folder_of_the_package_has_a_layer() -> None:
    """A new folder cannot escape the contracts: each one is named in the layers contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    named = {part.strip() for layer in layers for part in layer.split("|")}
    folders = {f"stem_pg.{p.name}" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - named == set()


def test_the_top_level_holds_only_entry_points() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL_ALLOWED, sorted(top - TOP_LEVEL_ALLOWED)


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules()}
    too_big = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert too_big == {}


def _query_like_strings(path: Path) -> list[str]:
    """Strings used where a query name goes: ``queries["x"]``, ``query_text("x")``, ``run("x", ...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            candidates: list[ast.expr] = [node.slice]
        elif isinstance(node, ast.Call):
            candidates = [*node.args, *(k.value for k in node.keywords)]
        else:
            continue
        found += [c.value for c in candidates if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return found


def test_named_queries_are_used_only_by_stores() -> None:
    names = set(load_queries())
    outside = {
        str(p.relative_to(ROOT)): sorted(names & set(_query_like_strings(p)))
        for p in modules()
        if STORES not in p.parents
    }
    assert {path: used for path, used in outside.items() if used} == {}


def test_each_named_query_has_one_store() -> None:
    """One store runs each query (a sync store and its async twin live in one module)."""
    uses: dict[str, set[str]] = {}
    names = set(load_queries())
    for path in STORES.glob("*.py"):
        for value in _query_like_strings(path):
            if value in names:
                uses.setdefault(value, set()).add(path.name)
    assert {name: where for name, where in uses.items() if len(where) > 1} == {}
    assert sorted(names - set(uses)) == [], "named queries no store runs"


def test_no_row_is_read_by_position_outside_the_stores() -> None:
    found = {
        f"{p.relative_to(ROOT)}:{number}": line.strip()
        for p in modules()
        if STORES not in p.parents
        for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1)
        if POSITIONAL_ROW.search(line)
    }
    assert found == {}
