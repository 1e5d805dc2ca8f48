"""``stem demo``: show stem_pg working end to end (embedded Postgres when no URL is set)."""

from __future__ import annotations

import os

import typer

from stem_pg.cli import common


def demo_command(url: common.UrlOption = None, namespace: common.NamespaceOption = None) -> None:
    """Migrate a namespace, enqueue tasks, run a worker and print the results.

    Without --url or STEM_BROKER_URL a private embedded PostgreSQL is started
    (and left running for the next run).
    """
    from stem_pg.dev.demo import DEMO_NAMESPACE, run_demo

    if url or os.environ.get("STEM_BROKER_URL"):
        database = common.reachable(common.database_url(url))
    else:
        from stem_pg.dev.embedded import embedded_url

        typer.echo("STEM_BROKER_URL is not set: starting an embedded PostgreSQL ...")
        database = embedded_url()
        typer.echo(f"embedded PostgreSQL at {database}")
    if not run_demo(database, namespace or DEMO_NAMESPACE, say=typer.echo):
        raise typer.Exit(1)
