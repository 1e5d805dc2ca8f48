"""``stem tasks``: registered tasks, one task's state, and enqueueing from the shell."""

from __future__ import annotations

import json as jsonlib
import warnings
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.core.durations import parse_duration
from stem_pg.core.errors import ConfigError, UnknownTaskWarning
from stem_pg.core.tasks import TASK_OPTION_NAMES, TaskDefinition, make_options

if TYPE_CHECKING:
    from stem_pg.client.app import Stem

#: Seconds since its last heartbeat within which a worker's registered task options count.
LIVE_WITHIN = 60.0

app = typer.Typer(
    help="List registered tasks, show a task's state, enqueue tasks, check waiting work against a release.",
    no_args_is_help=True,
)

AppOption = Annotated[
    str, typer.Option("--app", "-A", help="Your application object, as 'package.module:app'.")
]


@app.command("ls")
def list_command(app_spec: AppOption, json: common.JsonOption = False) -> None:
    """List the tasks your application registers, with their options."""
    from stem_pg.cli.loading import load_app

    stem = load_app(app_spec)
    rows = []
    for definition in stem.registry:
        options = definition.options
        route = stem.routing.resolve(definition.name, queue=options.queue, priority=options.priority)
        rows.append(
            {
                "name": definition.name,
                "kind": "async" if definition.is_async else "sync",
                "queue": route.name,
                "priority": route.priority,
                "max_retries": stem.default_max_retries
                if options.max_retries is None
                else options.max_retries,
                "time_limit": options.time_limit,
                "ignore_result": options.ignore_result,
            }
        )
    if json:
        common.print_json(rows)
    else:
        common.print_table(
            rows,
            ["name", "kind", "queue", "priority", "max_retries", "time_limit", "ignore_result"],
        )


@app.command("check")
def check_command(
    app_spec: Annotated[
        str, typer.Option("--app", "-A", help="The release about to be deployed, as 'package.module:app'.")
    ],
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
) -> None:
    """Check that --app can run everything waiting in the namespace; exit 1 if not (for CI).

    Lists, one line per task and problem, the queued and scheduled jobs, beat schedules,
    canvas members planned for later and unfinished workflow runs whose task (or workflow)
    --app does not register, or whose argument names its handler no longer takes; with the
    count of each. Exits 0 when there are none.
    """
    from stem_pg.cli.loading import load_app
    from stem_pg.core.deploy_check import find_problems
    from stem_pg.db.connect import connection
    from stem_pg.db.stores.tasks_check import waiting_groups

    stem = common.apply_to_app(load_app(app_spec), url=url, namespace_flag=namespace)
    common.require_migrated(stem)
    with connection(stem.url, role="cli") as conn:
        groups = waiting_groups(conn, stem.queries)
    problems = find_problems(groups, stem.registry, stem.workflows)
    if json:
        common.print_json([asdict(problem) for problem in problems])
    elif problems:
        for problem in problems:
            typer.echo(problem.line())
    else:
        checked = sum(group.waiting for group in groups)
        typer.echo(
            f"ok: {app_spec} can run all {checked} waiting jobs, schedules, canvas members and workflow runs"
        )
    if problems:
        raise typer.Exit(1)


@app.command("show")
def show_command(
    task_id: Annotated[str, typer.Argument(help="The task id.")],
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """Show a task's state, attempts, timings, result or error, and error history."""
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.tasks import show_task

    queries = queries_for(common.namespace(namespace))
    with connection(common.database_url(url), role="cli") as conn:
        detail = show_task(conn, queries, task_id)
    if detail is None:
        typer.echo(f"error: no task {task_id!r} in namespace {queries.namespace!r}", err=True)
        raise typer.Exit(1)
    data = asdict(detail)
    if json:
        common.print_json(data)
        return
    for key, value in data.items():
        if value is not None and key != "traceback":
            typer.echo(
                f"{key:>17}: {jsonlib.dumps(value, default=str) if isinstance(value, dict | list) else value}"
            )
    if detail.traceback:
        typer.echo(detail.traceback.rstrip())


@app.command("enqueue")
def enqueue_command(
    name: Annotated[str, typer.Argument(help="The task name, e.g. reports.daily.")],
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments as a JSON object.")] = "{}",
    queue: Annotated[
        str | None, typer.Option("--queue", "-Q", help="Queue override (else routing decides).")
    ] = None,
    priority: Annotated[
        int | None, typer.Option("--priority", help="Priority, clamped into the queue's range.")
    ] = None,
    countdown: Annotated[
        str | None, typer.Option("--countdown", help="Delay before it may run, e.g. 30s or 5m.")
    ] = None,
    task_id: Annotated[
        str | None, typer.Option("--task-id", help="Use this id (enqueue is idempotent per id).")
    ] = None,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            "-A",
            help="Application whose routing and task options to use (else: those a live worker registered).",
        ),
    ] = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    wait: Annotated[
        float | None, typer.Option("--wait", help="Wait up to this many seconds for the result.")
    ] = None,
) -> None:
    """Enqueue one task by name and print its id (and its result with --wait).

    The task's own options (queue, priority, max_retries, ...) come from --app, else from
    what the newest live worker registered for it; with neither, nothing is enqueued.
    """
    arguments = common.json_object(kwargs, "--kwargs")
    try:
        delay = parse_duration(countdown, what="--countdown") if countdown else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    stem = common.stem_app(app_spec, url, namespace, common.namespace)
    if app_spec is None:
        stem.registry.register(_registered_by_workers(stem, name))
    with warnings.catch_warnings(record=True) as caught:  # a likely typo of a task name
        warnings.simplefilter("always", UnknownTaskWarning)
        result = stem.enqueue(
            name, arguments, queue=queue, priority=priority, countdown=delay, task_id=task_id
        )
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    typer.echo(result.id)
    if wait is not None:
        typer.echo(jsonlib.dumps(result.get(timeout=wait), default=str))
    stem.close()


def _registered_by_workers(stem: Stem, name: str) -> TaskDefinition:
    """Task ``name`` with the options the newest live worker registered for it (its handler
    stays on the workers); a ConfigError when no live worker registers it."""
    from stem_pg.db.connect import connection
    from stem_pg.db.stores.workers import WorkerStore

    with connection(stem.url, role="cli") as conn:
        found = WorkerStore(stem.queries).task_options(conn, task=name, stale_after=LIVE_WITHIN)
    if found is None:
        raise ConfigError(
            f"no live worker of namespace {stem.namespace!r} registers task {name!r}, so its options"
            " (queue, priority, max_retries) are unknown; pass --app package.module:app"
        )
    options = {k: v for k, v in found.items() if k in TASK_OPTION_NAMES}
    return TaskDefinition.build(name, _runs_on_the_workers, make_options(f"task {name!r}", options))


def _runs_on_the_workers(**kwargs: Any) -> None:
    """The stand-in handler of a task known from the workers: its arguments are checked there."""
