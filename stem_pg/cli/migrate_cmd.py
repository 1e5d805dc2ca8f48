"""``stem migrate``: create, upgrade or downgrade one namespace's schema."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from stem_pg.cli import common

if TYPE_CHECKING:  # alembic loads in 0.2 s: only for the commands that use it (stem worker restarts)
    from stem_pg.schema.migrate import Action


class MigrateAction(StrEnum):
    upgrade = "upgrade"
    downgrade = "downgrade"
    current = "current"


def migrate_command(
    action: Annotated[
        MigrateAction,
        typer.Argument(help="upgrade (default), downgrade, or current (show the revision)."),
    ] = MigrateAction.upgrade,
    revision: Annotated[
        str | None,
        typer.Argument(
            help="Target revision: 'head' for upgrade; 'base' for downgrade removes everything.",
            show_default=False,
        ),
    ] = None,
    namespace: common.NamespaceOption = None,
    sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the SQL instead of running it (no database needed)."),
    ] = False,
    url: common.UrlOption = None,
) -> None:
    """Create or upgrade a namespace's schema with alembic (the version table lives inside it).

    Concurrent runs on the same namespace take turns on an advisory lock.
    """
    from stem_pg.schema.migrate import current_revision, head_revision, migrate, migration_sql

    ns = common.namespace(namespace)
    if action is MigrateAction.current:
        rev = current_revision(common.reachable(common.database_url(url)), ns)
        typer.echo(f"{ns}: {rev or 'not migrated'} (head is {head_revision()})")
        return
    if action is MigrateAction.downgrade and revision is None:
        raise typer.BadParameter("downgrade needs a revision, e.g. 'base'", param_hint="REVISION")
    target = revision or "head"
    if sql:
        if action is MigrateAction.downgrade and ":" not in target:
            target = f"{head_revision()}:{target}"
        typer.echo(migration_sql(ns, _action(action), target), nl=False)
        return
    database = common.reachable(common.database_url(url))  # fails fast, naming host and port
    migrate(database, ns, _action(action), target)
    typer.echo(f"{ns}: {action.value} to {target} done (now at {current_revision(database, ns) or 'base'})")


def _action(action: MigrateAction) -> Action:
    return "downgrade" if action is MigrateAction.downgrade else "upgrade"
