"""Named SQL queries, loaded once from ``sql/*.sql`` and bound to a namespace.

Each file holds blocks that start with ``-- name: query_name`` followed by a
one-line ``-- description``. ``{ns}`` in a block is the namespace schema and is
filled in with ``psycopg.sql.Identifier``, so literal braces in SQL must be
doubled (``'{{}}'::jsonb``). Bound queries are rendered to text once per
namespace: the hot path never re-composes SQL.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import LiteralString

from psycopg import sql

from stem_pg.core.namespaces import Channels, validate_namespace
from stem_pg.db.resources import sql_dir

_BLOCK_START = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.M)


@dataclass(frozen=True)
class NamedQuery:
    """One query as written in its file."""

    name: str
    description: str
    text: str
    file: str


@functools.cache
def load_queries() -> dict[str, NamedQuery]:
    """Every named query of every file in ``sql/``; a duplicate name is an error."""
    found: dict[str, NamedQuery] = {}
    files = sorted((p for p in sql_dir().iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    for path in files:
        for query in _parse(path.read_text(encoding="utf-8"), path.name):
            if query.name in found:
                raise RuntimeError(
                    f"query {query.name!r} is defined in {found[query.name].file} and {path.name}"
                )
            found[query.name] = query
    return found


def query_text(name: str) -> LiteralString:
    """A query that does not belong to a namespace (it has no ``{ns}``)."""
    return load_queries()[name].text


def _parse(text: str, file: str) -> list[NamedQuery]:
    starts = list(_BLOCK_START.finditer(text))
    if not starts:  # plain DDL, such as schema.sql
        return []
    queries = []
    for here, after in zip(starts, [*starts[1:], None], strict=True):
        body = text[here.end() : after.start() if after else len(text)].strip()
        lines = body.splitlines()
        description = lines[0].removeprefix("--").strip() if lines and lines[0].startswith("--") else ""
        statement = "\n".join(line for line in lines if not line.lstrip().startswith("--")).strip()
        queries.append(NamedQuery(here["name"], description, statement.rstrip(";"), file))
    return queries


class Queries:
    """The named queries of one namespace, rendered with its quoted schema name."""

    def __init__(self, namespace: str) -> None:
        self.namespace = validate_namespace(namespace)
        self.channels = Channels(self.namespace)
        self._schema = sql.Identifier(self.namespace)
        self._rendered: dict[str, LiteralString] = {}

    def __getitem__(self, name: str) -> LiteralString:
        rendered = self._rendered.get(name)
        if rendered is None:
            query = load_queries()[name]
            composed = sql.SQL(query.text).format(ns=self._schema)
            rendered = self._rendered[name] = composed.as_string(None)
        return rendered


@functools.cache
def queries_for(namespace: str) -> Queries:
    """The shared Queries object of ``namespace``."""
    return Queries(namespace)
