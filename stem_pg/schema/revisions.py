"""The migrations this version ships, read from their files without importing alembic.

A starting worker or beat checks that its namespace is at the head revision; reading
the ``revision`` / ``down_revision`` lines of the migration scripts keeps alembic,
SQLAlchemy and Mako (about 20 MB of a worker's memory) out of every runtime process.
``tests/unit/test_revisions.py`` checks the result against alembic's own reading.
"""

from __future__ import annotations

import functools
import re

from stem_pg.db.resources import migrations_dir

_ASSIGNMENT = re.compile(
    r"""^(revision|down_revision)\s*(?::\s*[^=]+)?=\s*(?:["']([^"']+)["']|None)\s*$""", re.M
)


@functools.cache
def shipped() -> tuple[str, ...]:
    """The revisions of the shipped migrations, oldest first (one linear chain)."""
    parent: dict[str, str | None] = {}
    for script in sorted(migrations_dir().joinpath("versions").glob("*.py")):
        found = dict((name, value or None) for name, value in _ASSIGNMENT.findall(script.read_text()))
        if "revision" in found and found["revision"] is not None:
            parent[found["revision"]] = found.get("down_revision")
    children = {down: rev for rev, down in parent.items()}
    chain: list[str] = []
    current = children.get(None)
    while current is not None:
        chain.append(current)
        current = children.get(current)
    if len(chain) != len(parent):
        raise RuntimeError(f"the migrations in {migrations_dir()} are not one chain: {sorted(parent)}")
    return tuple(chain)


def head_revision() -> str:
    """The newest migration this version of stem_pg ships."""
    return shipped()[-1]


def is_older_than_head(revision: str) -> bool:
    """Whether ``revision`` is one of this version's migrations other than the head (an
    unknown revision is a newer version's)."""
    return revision in shipped() and revision != head_revision()
