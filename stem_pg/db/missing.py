"""Telling a namespace that is not migrated (or is at an older revision) from other
database errors, so that the user reads which command fixes it instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from stem_pg.core.errors import NotMigratedError

#: What a statement meets in a namespace that lacks a table, column or function it uses.
_MISSING = (
    errors.UndefinedTable,
    errors.UndefinedColumn,
    errors.UndefinedFunction,
    errors.InvalidSchemaName,
)


def not_migrated(exc: BaseException, namespaces: Iterable[str]) -> NotMigratedError | None:
    """The NotMigratedError ``exc`` means for one of ``namespaces``, or None.

    A missing table, function or schema counts when the message names the namespace
    (``relation "ns.jobs" does not exist``); a missing column (an older revision) when
    one namespace is in play, as Postgres does not name the schema then.
    """
    if not isinstance(exc, _MISSING):
        return None
    names = list(dict.fromkeys(namespaces))
    text = str(exc)
    for name in names:
        if f'"{name}.' in text or f" {name}." in text or f'schema "{name}"' in text:
            return NotMigratedError(name)
    if isinstance(exc, errors.UndefinedColumn) and len(names) == 1:
        return NotMigratedError(names[0])
    return None


@contextmanager
def migrated(namespace: str) -> Iterator[None]:
    """Turn the errors of an unmigrated ``namespace`` into NotMigratedError (sync or async code)."""
    try:
        yield
    except psycopg.Error as exc:
        found = not_migrated(exc, [namespace])
        if found is None:
            raise
        raise found from None
