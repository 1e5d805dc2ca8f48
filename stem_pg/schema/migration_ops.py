"""Helpers the alembic scripts in ``migrations/`` share.

Migrations are raw SQL with ``{ns}`` standing for the namespace schema, so the
DDL stays explicit and reviewable (``stem migrate --sql`` prints it as is). What
they build, all migrations applied, is ``sql/schema.sql``; a test keeps the two equal.
"""

from __future__ import annotations

import re

from alembic import op
from psycopg import sql

from stem_pg.core.namespaces import validate_namespace

NAMESPACE_OPTION = "stem_namespace"

# alembic wraps statements in sqlalchemy.text(), where ":name" is a bind
# parameter; escape such colons (but not "::" casts) so they stay literal.
_BIND_LIKE_COLON = re.compile(r"(?<![:\\]):(?=[A-Za-z_])")


def current_namespace() -> str:
    """The namespace the running migration applies to (set by ``migrations/env.py``)."""
    return validate_namespace(op.get_context().opts[NAMESPACE_OPTION])


def render(text: str, namespace: str) -> str:
    """``text`` with ``{ns}`` replaced by the quoted schema name of ``namespace``."""
    composed = sql.SQL(text).format(ns=sql.Identifier(namespace))
    return composed.as_string(None)


def run_sql(text: str) -> None:
    """Execute the statements of ``text`` for the current namespace."""
    for statement in _statements(render(text, current_namespace())):
        op.execute(_BIND_LIKE_COLON.sub(r"\\:", statement))


def _statements(text: str) -> list[str]:
    """Split on lines that end with ``;`` outside dollar-quoted bodies."""
    statements, current, in_body = [], [], False
    for line in text.splitlines():
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    tail = "\n".join(current).strip()
    return [s for s in [*statements, tail] if s]
