"""``stem routing``: validate the routing file and show where tasks would be sent."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.config.routing_file import load_routing_file
from stem_pg.core.routing import RouteDefinition, RoutingConfig
from stem_pg.core.routing_registry import RoutingRegistry

app = typer.Typer(
    help="Validate and inspect the routing file (STEM_ROUTING_CONFIG).",
    no_args_is_help=True,
)

FileArgument = Annotated[
    str | None,
    typer.Argument(
        help="The routing YAML file to read. Defaults to STEM_ROUTING_CONFIG.",
        metavar="FILE",
        show_default=False,
    ),
]
TaskOption = Annotated[
    list[str] | None,
    typer.Option(
        "--task",
        "-t",
        help="A task name to resolve, such as reports.daily. Repeat it to show several.",
        show_default=False,
    ),
]

_LEGACY = "the legacy single-queue configuration is in use"


@app.command("validate")
def validate_command(file: FileArgument = None) -> None:
    """Check a routing file and count what it defines.

    An invalid file exits with status 1 and a message naming the file, the
    line and the key.
    """
    path = file or common.config().routing_config
    if path is None:
        typer.echo(f"No routing file given and STEM_ROUTING_CONFIG is not set: {_LEGACY}.")
        return
    routing = load_routing_file(path)
    counts = ", ".join(
        _plural(len(items), noun)
        for items, noun in (
            (routing.queues, "queue"),
            (routing.broadcasts, "broadcast"),
            (routing.routes, "route"),
        )
    )
    typer.echo(f"{path}: ok ({counts})")


@app.command("dump")
def dump_command(file: FileArgument = None, json: common.JsonOption = False, task: TaskOption = None) -> None:
    """Show the resolved routing: default queue, queues, broadcasts and routes in order.

    With --task, also show where each named task would be sent and which route
    decided it. Without a file or STEM_ROUTING_CONFIG the legacy configuration
    (one open queue, STEM_DEFAULT_QUEUE) is shown.
    """
    routing = _load(file)
    tasks = _resolve_tasks(RoutingRegistry(routing), task or [])
    if json:
        common.print_json({"source": routing.source, **routing.to_dict(), "tasks": tasks})
        return
    _print_config(routing)
    if tasks:
        typer.echo("\ntasks:")
        common.print_table(tasks, ["task", "kind", "name", "priority", "matched"])


def _load(file: str | None) -> RoutingConfig:
    if file:
        return load_routing_file(file)
    settings = common.config()
    if settings.routing_config is None:
        return RoutingConfig.legacy(settings.default_queue)
    return load_routing_file(settings.routing_config)


def _resolve_tasks(registry: RoutingRegistry, names: list[str]) -> list[dict[str, Any]]:
    """Where each task goes; ``route`` is the index of the matching rule, None for the default."""
    rows = []
    for name in names:
        resolved = registry.resolve(name)
        index = _route_index(registry.config.routes, resolved.route)
        rows.append(
            {
                "task": name,
                "kind": resolved.kind,
                "name": resolved.name,
                "priority": resolved.priority,
                "route": index,
                "matched": "default" if index is None else f"routes[{index}]",
            }
        )
    return rows


def _route_index(routes: tuple[RouteDefinition, ...], route: RouteDefinition | None) -> int | None:
    # Identity, not equality: two equal rules are still two positions in the file.
    return next((i for i, candidate in enumerate(routes) if candidate is route), None)


def _print_config(routing: RoutingConfig) -> None:
    default = routing.default_queue
    fallbacks = ", ".join(default.fallbacks) or "none"
    typer.echo(f"source: {routing.source or f'none ({_LEGACY})'}")
    typer.echo(f"default queue: {default.queue} (alias {default.alias!r}; fallbacks: {fallbacks})")
    typer.echo("\nqueues:")
    if routing.queues:
        queues = [
            {
                "name": name,
                "priorities": f"{q.priority_range.min}..{q.priority_range.max}",
                "exchange": q.exchange,
                "routing_key": q.routing_key,
            }
            for name, q in routing.queues.items()
        ]
        common.print_table(queues, ["name", "priorities", "exchange", "routing_key"])
    else:
        typer.echo("(none defined: any queue name is accepted, with priorities 0..9)")
    typer.echo("\nbroadcasts:")
    broadcasts = [{"name": name, **b.to_dict()} for name, b in routing.broadcasts.items()]
    common.print_table(broadcasts, ["name", "delivery", "durability"])
    typer.echo("\nroutes (first match wins):")
    routes = [
        {
            "#": index,
            "match": _describe_match(route),
            "target": _describe_target(route),
            "priority": route.priority,
        }
        for index, route in enumerate(routing.routes)
    ]
    common.print_table(routes, ["#", "match", "target", "priority"])


def _describe_match(route: RouteDefinition) -> str:
    parts = [f"task={route.match.task}"] if route.match.task is not None else []
    parts += [f"header {key}={value}" for key, value in route.match.headers.items()]
    return " and ".join(parts)


def _describe_target(route: RouteDefinition) -> str:
    return f"{route.target.type} {route.target.name}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
