"""The caller's connection for a transactional enqueue: a framework's wrapper gives its driver's.

Django's database connection (``django.db.connection``, ``connections["alias"]``) wraps a
psycopg 3 connection (Django >= 4.2 on psycopg 3); enqueueing on it writes in the Django
transaction, so inside ``transaction.atomic()`` the job exists only if that block commits.
The wrapper is recognised by its shape, never imported: the client does not depend on Django.
"""

from __future__ import annotations

from typing import Any

import psycopg

from stem_pg.core.errors import TaskError


def driver_connection(connection: Any) -> Any:
    """``connection``, or the psycopg connection inside a Django database connection (opened
    if it was not yet). Raises TaskError for a Django database that is not PostgreSQL on psycopg 3."""
    if connection is None or isinstance(connection, psycopg.Connection | psycopg.AsyncConnection):
        return connection
    if not _is_django(connection):
        return connection
    alias = getattr(connection, "alias", "?")
    vendor = getattr(connection, "vendor", "?")
    if vendor != "postgresql":
        raise TaskError(f"connection: Django database {alias!r} is {vendor}, not PostgreSQL")
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise TaskError(
            f"connection: Django database {alias!r} runs on {type(raw).__module__.split('.')[0]};"
            " stem_pg joins Django transactions on the psycopg 3 backend (Django >= 4.2 uses it"
            " when psycopg 3 is installed)"
        )
    return raw


def _is_django(connection: Any) -> bool:
    """A Django database wrapper, or the ``django.db.connection`` proxy to one."""
    module = type(connection).__module__ or ""
    return module.startswith("django.") and callable(getattr(connection, "ensure_connection", None))
