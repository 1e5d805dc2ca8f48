"""Command groups whose features have not landed yet: they say so plainly and exit 1."""

from __future__ import annotations

import typer


def pending_group(name: str, what: str) -> typer.Typer:
    """A group named ``name`` that explains ``what`` it will do and that it is not there yet."""
    group = typer.Typer(help=f"{what} (not available in this version yet).", invoke_without_command=True)

    @group.callback()
    def _pending() -> None:
        typer.echo(f"error: 'stem {name}' is not available in this version of stem_pg yet.", err=True)
        raise typer.Exit(1)

    return group
