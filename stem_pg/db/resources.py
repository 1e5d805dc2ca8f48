"""Locate the SQL files and the alembic environment, installed or in a checkout.

A wheel carries them as ``stem_pg/_data/{sql,migrations}``; a source checkout
(editable install, tests) has them at the repository root.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def _data(name: str) -> Traversable | Path:
    packaged = resources.files("stem_pg") / "_data" / name
    if packaged.is_dir() or packaged.is_file():
        return packaged
    return _CHECKOUT_ROOT / name


def sql_dir() -> Traversable | Path:
    """The directory of named ``*.sql`` query files."""
    return _data("sql")


def migrations_dir() -> Path:
    """The alembic script directory (alembic needs a real filesystem path)."""
    found = _data("migrations")
    return Path(str(found))
