"""Alembic environment: one namespace schema per run, its version table inside it.

Namespace: ``-x namespace=NS`` (or the ``namespace`` attribute set by
``stem migrate``), else STEM_NAMESPACE, else ``stem``. URL: ``-x url=...``, the
``url`` attribute, or STEM_BROKER_URL. Online runs hold an advisory lock per
namespace so concurrent ``stem migrate`` processes take turns.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

from stem_pg.core.dsn import libpq_url, pooler, validate_url
from stem_pg.core.errors import ConfigError
from stem_pg.core.namespaces import validate_namespace
from stem_pg.schema.migration_ops import NAMESPACE_OPTION, render

VERSION_TABLE = "alembic_version"
LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended('stem_pg:migrate:' || :ns, 0))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended('stem_pg:migrate:' || :ns, 0))"


def _setting(name: str, variable: str) -> str | None:
    given = context.get_x_argument(as_dictionary=True).get(name)
    return given or context.config.attributes.get(name) or os.environ.get(variable) or None


def _namespace() -> str:
    source = "-x namespace" if context.get_x_argument(as_dictionary=True).get("namespace") else "namespace"
    return validate_namespace(_setting("namespace", "STEM_NAMESPACE") or "stem", source=source)


def _url() -> str:
    url = _setting("url", "STEM_BROKER_URL")
    if url is None:
        raise ConfigError("no database URL: pass -x url=postgresql://... or set STEM_BROKER_URL")
    if pooler(url) is not None:
        # The migration lock is a session's: behind a transaction pooler it would be taken on
        # one server session and released on another (and never let go of).
        direct = os.environ.get("STEM_DIRECT_URL")
        if not direct:
            raise ConfigError(
                "the database URL is a transaction pooler (stem_pooler=transaction): migrate"
                " through a direct URL (set STEM_DIRECT_URL, or pass it as --url)"
            )
        url = direct
    return "postgresql+psycopg://" + libpq_url(validate_url(url, source="database URL")).split("://", 1)[1]


def _options(namespace: str) -> dict[str, object]:
    return {
        "version_table": VERSION_TABLE,
        "version_table_schema": namespace,
        "transactional_ddl": True,
        NAMESPACE_OPTION: namespace,
    }


def run_offline(namespace: str) -> None:
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        **_options(namespace),
    )
    with context.begin_transaction():
        context.execute(render("CREATE SCHEMA IF NOT EXISTS {ns}", namespace))
        context.run_migrations()


def run_online(namespace: str) -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(LOCK_SQL), {"ns": namespace})
        connection.execute(text(render("CREATE SCHEMA IF NOT EXISTS {ns}", namespace)))
        connection.commit()
        try:
            context.configure(connection=connection, **_options(namespace))
            with context.begin_transaction():
                context.run_migrations()
            _drop_empty_schema(connection, namespace)
        finally:
            connection.rollback()
            connection.execute(text(UNLOCK_SQL), {"ns": namespace})
            connection.commit()
    engine.dispose()


def _drop_empty_schema(connection: Connection, namespace: str) -> None:
    """After ``downgrade base`` nothing of ours is left: remove the schema too."""
    if context.get_context().get_current_heads():
        return
    connection.execute(text(render("DROP TABLE IF EXISTS {ns}." + VERSION_TABLE, namespace)))
    connection.execute(text(render("DROP SCHEMA IF EXISTS {ns} RESTRICT", namespace)))
    connection.commit()


def main() -> None:
    namespace = _namespace()
    if context.is_offline_mode():
        run_offline(namespace)
    else:
        run_online(namespace)


main()
