"""``stem wf``: start, list, show, cancel and rewind durable workflow runs; emit events."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.core.workflows import RunStatus

if TYPE_CHECKING:  # the stores load psycopg: only the commands that run import them
    from stem_pg.db.stores.workflow_runs import Conn, WorkflowRunStore

app = typer.Typer(
    help="Start and inspect durable workflow runs, emit the events they wait for.", no_args_is_help=True
)

RunArgument = Annotated[str, typer.Argument(help="The run id (as 'stem wf start' or 'stem wf ls' print it).")]
AppOption = Annotated[
    str | None,
    typer.Option("--app", "-A", help="Application whose workflow options and routing to use, 'module:app'."),
]
RUN_COLUMNS = ["id", "workflow", "status", "steps_done", "waiting_for", "created_at", "finished_at", "error"]


@app.command("start")
def start_command(
    name: Annotated[str, typer.Argument(help="The workflow name, as registered with @app.workflow.")],
    params: Annotated[str, typer.Option("--params", help="Parameters as a JSON object.")] = "{}",
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Use this run id (starting is idempotent per id).")
    ] = None,
    app_spec: AppOption = None,
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
    wait: Annotated[
        float | None, typer.Option("--wait", help="Wait up to this many seconds for the run's result.")
    ] = None,
) -> None:
    """Start a run of a workflow and print its id (and its result with --wait)."""
    arguments = common.json_object(params, "--params")
    stem = common.stem_app(app_spec, url, namespace, common.workflow_namespace)
    try:
        run = stem.start_workflow(name, arguments, run_id=run_id)
        typer.echo(run.id)
        if wait is not None:
            typer.echo(jsonlib.dumps(run.get(timeout=wait), default=str))
    finally:
        stem.close()


@app.command("ls")
def list_command(
    status: Annotated[
        RunStatus | None, typer.Option("--status", help="Only runs with this status.", case_sensitive=False)
    ] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs, newest first.")] = 50,
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """List workflow runs, newest first."""
    chosen = status.value if status else None
    with _store(namespace, url) as (store, conn):
        rows = _dicts(store.list_runs(conn, status=chosen, workflow=workflow, limit=limit))
    if json:
        common.print_json(rows)
    else:
        common.print_table(rows, RUN_COLUMNS)


@app.command("show")
def show_command(
    run_id: RunArgument,
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """Show a run: status, parameters, result or error, and its checkpoints in order."""
    with _store(namespace, url) as (store, conn):
        run = store.show_run(conn, run_id=run_id)
        steps = _dicts(store.list_steps(conn, run_id=run_id)) if run else []
    if run is None:
        typer.echo(f"error: no workflow run {run_id!r} in namespace {_ns(namespace)!r}", err=True)
        raise typer.Exit(1)
    if json:
        common.print_json({**asdict(run), "steps": steps})
        return
    for key, value in asdict(run).items():
        if value is not None:
            shown = jsonlib.dumps(value, default=str) if isinstance(value, dict | list) else value
            typer.echo(f"{key:>13}: {shown}")
    typer.echo("")
    common.print_table(steps, ["seq", "step", "kind", "output", "error", "job_id", "finished_at"])


@app.command("cancel")
def cancel_command(
    run_id: RunArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept as the run's error.")] = None,
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Cancel a run and its unfinished child runs; their jobs are revoked (running ones terminated)."""
    stem = common.stem_app(None, url, namespace, common.workflow_namespace)
    try:
        cancelled = stem.cancel_workflow(run_id, reason)
    finally:
        stem.close()
    if not cancelled:
        typer.echo(f"run {run_id} had already ended (or does not exist): nothing changed")
        raise typer.Exit(1)
    for cancelled_id in cancelled:
        typer.echo(f"cancelled {cancelled_id}")


@app.command("rewind")
def rewind_command(
    run_id: RunArgument,
    step: Annotated[
        str, typer.Option("--step", help="The checkpoint to run again from (see 'stem wf show').")
    ],
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Run a run again from a checkpoint: it and every later checkpoint are dropped."""
    stem = common.stem_app(None, url, namespace, common.workflow_namespace)
    try:
        dropped = stem.rewind_workflow(run_id, step)
    finally:
        stem.close()
    typer.echo(f"run {run_id} rewound to {step!r}: {dropped} checkpoint(s) dropped, a new job resumes it")


@app.command("emit")
def emit_command(
    topic: Annotated[str, typer.Argument(help="The event topic runs wait on (ctx.await_event).")],
    payload: Annotated[str, typer.Option("--payload", help="The event's payload, JSON.")] = "null",
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Deliver an event to every run waiting on TOPIC and wake them; prints how many it reached."""
    try:
        value = jsonlib.loads(payload)
    except jsonlib.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    stem = common.stem_app(None, url, namespace, common.workflow_namespace)
    try:
        delivered = stem.emit(topic, value)
    finally:
        stem.close()
    typer.echo(f"delivered to {delivered} run(s)")


@app.command("waiters")
def waiters_command(
    topic: Annotated[str | None, typer.Option("--topic", help="Only waiters on this topic.")] = None,
    namespace: common.WorkflowNamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """List runs waiting for events, with their deadlines."""
    with _store(namespace, url) as (store, conn):
        rows = _dicts(store.list_waiters(conn, topic=topic))
    if json:
        common.print_json(rows)
    else:
        common.print_table(rows, ["topic", "run_id", "workflow", "step", "deadline_at", "created_at"])


def _ns(namespace: str | None) -> str:
    return common.workflow_namespace(namespace)


@contextmanager
def _store(namespace: str | None, url: str | None) -> Iterator[tuple[WorkflowRunStore, Conn]]:
    """The run store of the namespace and a connection to read it with."""
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.workflow_runs import WorkflowRunStore

    store = WorkflowRunStore(queries_for(_ns(namespace)))
    with connection(common.database_url(url), role="cli") as conn:
        yield store, conn


def _dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
