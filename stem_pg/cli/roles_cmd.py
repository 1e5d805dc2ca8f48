"""``stem roles``: the producer, worker and operator roles of a namespace (stem_pg.schema.roles)."""

from __future__ import annotations

from typing import Annotated

import typer

from stem_pg.cli import common


def roles_command(
    namespace: common.NamespaceOption = None,
    sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the SQL instead of running it (no database needed)."),
    ] = False,
    url: common.UrlOption = None,
) -> None:
    """Create or update the roles <ns>_producer, <ns>_worker and <ns>_operator (NOLOGIN).

    producer: enqueue and read results; worker: what `stem worker run` and `stem beat`
    need; operator: control, revoke, pause, dead letters, schedules. Grant one to a
    login user (GRANT "stem_worker" TO app). Run it again after `stem migrate`.
    """
    from stem_pg.schema.roles import create_roles, roles_sql

    ns = common.namespace(namespace)
    if sql:
        typer.echo(roles_sql(ns).as_string(None), nl=False)
        return
    for name in create_roles(common.database_url(url), ns):
        typer.echo(f"role {name}: ok")
