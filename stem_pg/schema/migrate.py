"""Run the alembic migrations of one namespace, from the package or a checkout."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import OperationalError

from stem_pg.core.dsn import libpq_url, validate_url
from stem_pg.core.namespaces import validate_namespace
from stem_pg.core.redaction import one_line
from stem_pg.db.connect import DatabaseUnavailable, connection_options
from stem_pg.db.resources import migrations_dir
from stem_pg.schema.revisions import head_revision, is_older_than_head

__all__ = ["current_revision", "head_revision", "is_older_than_head", "migrate", "migration_sql"]

Action = Literal["upgrade", "downgrade"]


def alembic_config(namespace: str, url: str | None) -> Config:
    """An alembic Config pointing at the shipped migrations, for ``namespace``."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["namespace"] = validate_namespace(namespace)
    if url is not None:
        config.attributes["url"] = validate_url(url, source="database URL")
    return config


def migrate(url: str, namespace: str, action: Action = "upgrade", revision: str = "head") -> None:
    """Upgrade or downgrade ``namespace`` to ``revision`` (``head``, ``base``, ``0001``...)."""
    config = alembic_config(namespace, url)
    with _reachable():
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


@contextmanager
def _reachable() -> Iterator[None]:
    """Connection failures become DatabaseUnavailable (a StemError), with passwords redacted."""
    try:
        yield
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {one_line(str(exc.orig))}") from None


def migration_sql(namespace: str, action: Action = "upgrade", revision: str = "head") -> str:
    """The SQL a DBA would run for this migration, rendered offline (no connection)."""
    config = alembic_config(namespace, None)
    buffer = io.StringIO()
    config.output_buffer = buffer
    with redirect_stdout(io.StringIO()):
        if action == "upgrade":
            command.upgrade(config, revision, sql=True)
        else:
            command.downgrade(config, revision, sql=True)
    return buffer.getvalue()


def current_revision(url: str, namespace: str) -> str | None:
    """The revision ``namespace`` is migrated to, or None when it is not migrated."""
    namespace = validate_namespace(namespace)
    url = validate_url(url, source="database URL")
    sa_url = "postgresql+psycopg://" + libpq_url(url).split("://", 1)[1]
    engine = create_engine(sa_url, poolclass=pool.NullPool, connect_args=connection_options(url))
    try:
        with _reachable(), engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table_schema": namespace})
            return context.get_current_revision()
    finally:
        engine.dispose()
