"""Options and output helpers every CLI command shares; the CLI stays thin."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.config.settings import Component, StemConfig
from stem_pg.core.errors import ConfigError
from stem_pg.core.namespaces import validate_namespace

if TYPE_CHECKING:
    from stem_pg.client.app import Stem


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
        help="Namespace (Postgres schema) to act on. Defaults to STEM_NAMESPACE, then (with --app) the app's"
        " Stem(namespace=...), then 'stem'.",
        callback=_check_namespace,
        show_default=False,
    ),
]
WorkerNamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace of the workers. Defaults to STEM_WORKER_NAMESPACE, then STEM_NAMESPACE,"
        " then (with --app) the app's Stem(namespace=...), then 'stem'.",
        callback=_check_namespace,
        show_default=False,
    ),
]
WorkflowNamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace of the workflow runs. Defaults to STEM_WORKFLOW_NAMESPACE, then STEM_NAMESPACE,"
        " then (with --app) the app's Stem(namespace=...), then 'stem'.",
        callback=_check_namespace,
        show_default=False,
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        metavar="PORT",
        help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics (one port for all"
        " --processes; needs stem_pg[metrics]).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Database URL. Defaults to STEM_BROKER_URL, then (with --app) the app's Stem(url).",
        show_default=False,
    ),
]

DirectUrlOption = Annotated[
    str | None,
    typer.Option(
        "--direct-url",
        help="A URL straight to Postgres for LISTEN (and the worker's vacuum) when --url is a"
        " transaction pooler (?stem_pooler=transaction). Defaults to STEM_DIRECT_URL.",
        show_default=False,
    ),
]


def config() -> StemConfig:
    """The environment's configuration; errors surface as clean CLI failures."""
    return StemConfig.from_environment(os.environ)


def database_url(url: str | None, *, app: Stem | None = None) -> str:
    """``--url``, else STEM_BROKER_URL, else the app's URL (StemConfig.url_for: the one rule)."""
    return config().url_for(flag=url, app=(lambda: app.url) if app is not None else None)


def listening_url(url: str) -> str:
    """``url``, or STEM_DIRECT_URL when ``url`` is a transaction pooler (a command that
    waits on LISTEN needs a session of its own)."""
    from stem_pg.core.dsn import pooler

    direct = config().direct_url
    return direct if direct and pooler(url) is not None else url


def reachable(url: str) -> str:
    """``url``, once a connection to it opened: a connection pool would otherwise retry an
    unreachable database for 30 s, logging a warning each time, before the one error line."""
    from stem_pg.db.connect import connection

    with connection(url, role="cli"):
        return url


def namespace(value: str | None, *, app: Stem | None = None, component: Component = "default") -> str:
    """``--namespace``, else the component's variable, else STEM_NAMESPACE, else the app's
    namespace, else ``stem`` (StemConfig.namespace_for: the one rule)."""
    resolved = config().namespace_for(component, flag=value, app=app.namespace if app else None)
    RESOLVED.append(resolved)
    return resolved


#: The namespaces this command resolved: an error from a missing table names the one it used.
RESOLVED: list[str] = []


def worker_namespace(value: str | None, *, app: Stem | None = None) -> str:
    """The namespace of workers (STEM_WORKER_NAMESPACE before STEM_NAMESPACE)."""
    return namespace(value, app=app, component="worker")


def workflow_namespace(value: str | None, *, app: Stem | None = None) -> str:
    """The namespace of workflow runs (STEM_WORKFLOW_NAMESPACE before STEM_NAMESPACE)."""
    return namespace(value, app=app, component="workflow")


def apply_to_app(
    app: Stem,
    *,
    url: str | None,
    namespace_flag: str | None,
    component: Component = "default",
    direct_url: str | None = None,
) -> Stem:
    """Point a loaded app at the database and the namespace the rules choose (``url``,
    ``namespace_flag`` and ``direct_url``: the ``--url``, ``--namespace`` and
    ``--direct-url`` values)."""
    from stem_pg.client.loading import point_app

    point_app(app, config(), url=url, namespace=namespace_flag, component=component, direct_url=direct_url)
    RESOLVED.append(app.namespace)
    return app


def json_object(text: str, option: str) -> dict[str, Any]:
    """The JSON object given to ``option``; anything else is a usage error naming it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=option) from None
    except RecursionError:  # the decoder recurses per level; the enqueue allows 100 anyway
        raise typer.BadParameter("nested too deeply (at most 100 levels)", param_hint=option) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object like '{\"x\": 1}'", param_hint=option)
    return value


def stem_app(
    app_spec: str | None, url: str | None, namespace: str | None, default: Callable[..., str]
) -> Stem:
    """The user's app (for its routing, task and workflow options) or a bare one, on the
    database and namespace the rules choose (``default``: ``namespace``, ``worker_namespace``
    or ``workflow_namespace``, called with ``app=``)."""
    from stem_pg.cli.loading import load_app
    from stem_pg.client.app import Stem

    base = load_app(app_spec) if app_spec else None
    stem = Stem(
        routing=base.routing if base else None,
        signing=base.planner.signing if base else None,  # None: STEM_SIGNING_KEYS, if set
    )
    stem.url = database_url(url, app=base)
    stem.namespace = default(namespace, app=base)
    if base is not None:
        stem.registry = base.registry
        stem.workflows = base.workflows
    reachable(stem.url)
    return stem


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


def require_migrated(app: Stem) -> None:
    """Refuse to start a worker or beat on a namespace that is not migrated to this
    version's head (NotMigratedError, one line) or on a database it cannot reach
    (DatabaseUnavailable): both would otherwise fail, or retry for ever, once running."""
    from stem_pg.schema.health import check_migrated

    check_migrated(app.url, app.namespace)
