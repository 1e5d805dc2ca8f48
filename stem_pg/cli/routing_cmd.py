"""``stem routing``: validate the routing file and show where tasks would be sent."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.config.routing_file import load_routing_file
from stem_pg.core.routing import QueueBinding, QueueDefinition, RouteDefinition, RoutingConfig
from stem_pg.core.routing_model import thawed
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
QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        "-q",
        help="Resolve each --task as sent to this queue (routes with queue_override then apply).",
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
def dump_command(
    file: FileArgument = None,
    json: common.JsonOption = False,
    task: TaskOption = None,
    queue: QueueOption = None,
) -> None:
    """Show the resolved routing: default queue, queues (with bindings and meta), broadcasts
    and routes in order (with queue_override, priority_override and options).

    With --task, also show where each named task would be sent and which route
    decided it (with --queue, as if the sender named that queue). Without a file
    or STEM_ROUTING_CONFIG the legacy configuration (one open queue,
    STEM_DEFAULT_QUEUE) is shown.
    """
    routing = _load(file)
    tasks = _resolve_tasks(RoutingRegistry(routing), task or [], queue)
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


def _resolve_tasks(registry: RoutingRegistry, names: list[str], queue: str | None) -> list[dict[str, Any]]:
    """Where each task goes; ``route`` is the index of the matching rule, None for the default."""
    rows = []
    for name in names:
        resolved = registry.resolve(name, queue=queue)
        index = _route_index(registry.config.routes, resolved.route)
        rows.append(
            {
                "task": name,
                "kind": resolved.kind,
                "name": resolved.name,
                "priority": resolved.priority,
                "route": index,
                "matched": _matched(index, queue),
            }
        )
    return rows


def _matched(index: int | None, queue: str | None) -> str:
    if index is not None:
        return f"routes[{index}]"
    return "default" if queue is None else "sent queue"


def _route_index(routes: tuple[RouteDefinition, ...], route: RouteDefinition | None) -> int | None:
    # Identity, not equality: two equal rules are still two positions in the file.
    return next((i for i, candidate in enumerate(routes) if candidate is route), None)


def _describe_limits(queue: QueueDefinition) -> str | None:
    """``100/s, 10 at once`` (``, fail closed`` when so); None without limits."""
    parts = [queue.rate_limit] if queue.rate_limit else []
    if queue.concurrency_limit is not None:
        parts.append(f"{queue.concurrency_limit} at once")
    if parts and not queue.limits_fail_open:
        parts.append("fail closed")
    return ", ".join(parts) or None


def _print_config(routing: RoutingConfig) -> None:
    default = routing.default_queue
    fallbacks = ", ".join(default.fallbacks) or "none"
    typer.echo(f"source: {routing.source or f'none ({_LEGACY})'}")
    typer.echo(f"default queue: {default.queue} (alias {default.alias!r}; fallbacks: {fallbacks})")
    if default.fallbacks:
        typer.echo("  (fallbacks are advisory, as in Stem: a worker consumes them only if subscribed)")
    typer.echo("\nqueues:")
    if routing.queues:
        queues = [
            {
                "name": name,
                "priorities": f"{q.priority_range.min}..{q.priority_range.max}",
                "exchange": q.exchange,
                "routing_key": q.routing_key,
                "bindings": [_describe_binding(b) for b in q.bindings] or None,
                "meta": _compact(q.meta),
                "limits": _describe_limits(q),
            }
            for name, q in routing.queues.items()
        ]
        columns = ["name", "priorities", "exchange", "routing_key", "bindings", "meta"]
        common.print_table(queues, columns + (["limits"] if any(q["limits"] for q in queues) else []))
    else:
        typer.echo("(none defined: any queue name is accepted, with priorities 0..9)")
    typer.echo("\nbroadcasts:")
    broadcasts = [
        {"name": name, "delivery": b.delivery, "durability": b.durability, "meta": _compact(b.meta)}
        for name, b in routing.broadcasts.items()
    ]
    common.print_table(broadcasts, ["name", "delivery", "durability", "meta"])
    typer.echo("\nroutes (first match wins):")
    routes = [
        {
            "#": index,
            "match": _describe_match(route),
            "target": _describe_target(route),
            "priority": route.priority,
            "priority_override": route.priority_override,
            "options": _compact(route.options),
        }
        for index, route in enumerate(routing.routes)
    ]
    common.print_table(routes, ["#", "match", "target", "priority", "priority_override", "options"])


def _describe_match(route: RouteDefinition) -> str:
    match = route.match
    parts = [f"task={'|'.join(match.patterns)}"] if match.patterns else []
    parts += [f"header {key}={value}" for key, value in match.headers.items()]
    if match.queue_override is not None:
        parts.append(f"sent to {match.queue_override}")
    return " and ".join(parts)


def _describe_binding(binding: QueueBinding) -> str:
    headers = "".join(f" {key}={value}" for key, value in binding.headers.items())
    weight = "" if binding.weight is None else f" weight={binding.weight}"
    return f"{binding.routing_key}{headers}{weight}"


def _compact(meta: Mapping[str, object]) -> str | None:
    """Meta as one line of JSON for a table cell; None (shown "-") when empty."""
    return jsonlib.dumps(thawed(meta), separators=(",", ":")) if meta else None


def _describe_target(route: RouteDefinition) -> str:
    return f"{route.target.type} {route.target.name}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
