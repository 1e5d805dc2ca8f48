"""``stem health``: is the database reachable, and which namespaces are migrated."""

from __future__ import annotations

import typer

from stem_pg.cli import common


def health_command(url: common.UrlOption = None, json: common.JsonOption = False) -> None:
    """Check the database connection, the server version and the migrated namespaces."""
    from stem_pg.schema.health import check_health  # alembic: loaded only when needed
    from stem_pg.schema.migrate import head_revision

    report = check_health(common.database_url(url))
    head = head_revision()
    rows = [
        {"namespace": ns, "revision": rev, "up_to_date": rev == head}
        for ns, rev in sorted(report.namespaces.items())
    ]
    if json:
        common.print_json(
            {"ok": True, "server_version": report.server_version, "head": head, "namespaces": rows}
        )
        return
    typer.echo(f"database: ok ({report.server_version})")
    typer.echo(f"stem_pg head revision: {head}")
    common.print_table(rows, ["namespace", "revision", "up_to_date"])
