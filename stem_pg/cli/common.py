"""Options and output helpers every CLI command shares; the CLI stays thin."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from stem_pg.config import StemConfig
from stem_pg.core.errors import ConfigError
from stem_pg.core.namespaces import validate_namespace


def _check_namespace(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_namespace(value, source="--namespace")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--namespace: ")) from None


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace (Postgres schema) to act on. Defaults to STEM_NAMESPACE, then 'stem'.",
        callback=_check_namespace,
        show_default=False,
    ),
]
WorkerNamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace of the workers. Defaults to STEM_WORKER_NAMESPACE, then STEM_NAMESPACE, then 'stem'.",
        callback=_check_namespace,
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL. Defaults to STEM_BROKER_URL.",
        show_default=False,
    ),
]


def config() -> StemConfig:
    """The environment's configuration; errors surface as clean CLI failures."""
    return StemConfig.from_environment(os.environ)


def database_url(url: str | None) -> str:
    """``--url`` if given, else STEM_BROKER_URL, else a ConfigError explaining both."""
    if url:
        from stem_pg.dsn import validate_url

        return validate_url(url, source="--url")
    return config().require_broker_url()


def namespace(value: str | None) -> str:
    """``--namespace`` if given, else the configured namespace."""
    return value or config().namespace


def worker_namespace(value: str | None) -> str:
    """``--namespace`` if given, else the configured worker namespace."""
    return value or config().worker_namespace


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """A plain aligned table; empty input prints a short note instead."""
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)
