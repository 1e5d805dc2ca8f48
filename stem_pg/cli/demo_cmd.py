"""``stem demo``: show stem_pg working end to end (embedded Postgres when no URL is set)."""

from __future__ import annotations

import os

import typer

from stem_pg.cli import common


def demo_command(url: common.UrlOption = None, namespace: common.NamespaceOption = None) -> None:
    """Migrate a namespace, enqueue tasks, run a worker and print the results.

    Without --url or STEM_BROKER_URL a private embedded PostgreSQL is started
    (and left running for the next run: see `stem embedded`).
    """
    from stem_pg.dev.demo import DEMO_NAMESPACE, run_demo

    embedded = not (url or os.environ.get("STEM_BROKER_URL"))
    if embedded:
        from stem_pg.dev.embedded import EmbeddedPostgres

        server = EmbeddedPostgres()
        typer.echo(f"STEM_BROKER_URL is not set: using the embedded PostgreSQL in {server.data_dir} ...")
        database = server.start()
        typer.echo(
            f"{'reusing the running' if server.reused else 'started an'} embedded PostgreSQL at {database}"
        )
    else:
        database = common.reachable(common.database_url(url))
    ok = run_demo(database, namespace or DEMO_NAMESPACE, say=typer.echo)
    if embedded:
        typer.echo("The embedded PostgreSQL keeps running for the next run. To use it in the Quick tour:")
        typer.echo("  export STEM_BROKER_URL=$(stem embedded url)")
        typer.echo("Stop it with `stem embedded stop`; `stem embedded reset` also deletes its data.")
    if not ok:
        raise typer.Exit(1)
