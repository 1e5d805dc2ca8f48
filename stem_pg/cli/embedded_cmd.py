"""``stem embedded status|url|stop|reset``: the private PostgreSQL that ``stem demo`` starts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stem_pg.cli import common

app = typer.Typer(
    help="Show, stop or reset the embedded PostgreSQL that `stem demo` starts when no URL is set"
    " (its directory: STEM_EMBEDDED_DIR, else ~/.local/share/stem_pg/embedded).",
    no_args_is_help=True,
)


@app.command("status")
def status_command(json: common.JsonOption = False) -> None:
    """Whether the embedded server runs, its directory, port, URL and size on disk."""
    from stem_pg.dev.embedded import EmbeddedPostgres
    from stem_pg.dev.embedded_ops import embedded_status, human_size

    status = embedded_status(EmbeddedPostgres())
    if json:
        common.print_json(status.as_dict())
        return
    typer.echo(f"embedded PostgreSQL: {f'running (pid {status.pid})' if status.running else 'not running'}")
    typer.echo(f"directory: {status.data_dir}")
    typer.echo(f"port: {status.port or '-'}")
    typer.echo(f"url: {status.url or '-'}")
    typer.echo(f"size on disk: {human_size(status.size_bytes)}")


@app.command("url")
def url_command() -> None:
    """Print the embedded server's URL, starting the server if it is not running.

    Use it for the Quick tour: export STEM_BROKER_URL=$(stem embedded url)
    """
    from stem_pg.dev.embedded import EmbeddedPostgres

    typer.echo(EmbeddedPostgres().start())


@app.command("stop")
def stop_command() -> None:
    """Stop the embedded server (its data stays; `stem demo` or `stem embedded url` starts it again)."""
    from stem_pg.dev.embedded import EmbeddedPostgres
    from stem_pg.dev.embedded_ops import stop_embedded

    server = EmbeddedPostgres()
    stopped = stop_embedded(server)
    if stopped:
        typer.echo(f"stopped the embedded PostgreSQL in {server.data_dir}")
    else:
        typer.echo(f"the embedded PostgreSQL in {server.data_dir} is not running")


@app.command("reset")
def reset_command(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking (needed when stdin is not a terminal).")
    ] = False,
) -> None:
    """Stop the embedded server and delete its data directory (every namespace in it)."""
    from stem_pg.dev.embedded import EmbeddedPostgres
    from stem_pg.dev.embedded_ops import embedded_status, human_size, reset_embedded

    server = EmbeddedPostgres()
    if not server.data_dir.exists():
        typer.echo(f"nothing to reset: {server.data_dir} does not exist")
        return
    if not yes:
        size = human_size(embedded_status(server).size_bytes)
        if not sys.stdin.isatty():
            typer.echo(
                f"error: not deleting {server.data_dir} ({size}): stdin is not a terminal to confirm;"
                " pass --yes",
                err=True,
            )
            raise typer.Exit(2)
        typer.confirm(f"Stop the embedded PostgreSQL and delete {server.data_dir} ({size})?", abort=True)
    freed = reset_embedded(server)
    typer.echo(f"deleted the embedded PostgreSQL in {server.data_dir} ({human_size(freed)} freed)")
