"""``stem worker``: run workers and see which are alive."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from stem_pg.cli import common
from stem_pg.core.routing_registry import RoutingSubscription
from stem_pg.db import connection
from stem_pg.loading import load_app
from stem_pg.queries import queries_for
from stem_pg.store.workers import WorkerStore

app = typer.Typer(help="Run workers and inspect them.", no_args_is_help=True)

AppOption = Annotated[
    str, typer.Option("--app", "-A", help="Your application object, as 'package.module:app'.")
]


@app.command("run")
def run_command(
    app_spec: AppOption,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-Q",
            help="Queue to consume (repeatable). Defaults to STEM_WORKER_QUEUES, then the default queue.",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Tasks run at once per process.")
    ] = 10,
    processes: Annotated[
        int,
        typer.Option("--processes", "-p", min=1, help="Worker processes to fork (use every core)."),
    ] = 1,
    prefetch_multiplier: Annotated[
        int | None,
        typer.Option(
            "--prefetch-multiplier",
            min=1,
            help="Jobs leased per free slot. Defaults to STEM_PREFETCH_MULTIPLIER, then 2.",
        ),
    ] = None,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=0.5,
            help="Seconds a leased job stays ours without a heartbeat (visibility timeout).",
        ),
    ] = 30.0,
    grace: Annotated[
        float,
        typer.Option("--shutdown-grace", min=0, help="Seconds to let running tasks finish after SIGTERM."),
    ] = 30.0,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=0.05, help="Seconds between polls when no wake-up arrives."),
    ] = 1.0,
    namespace: common.WorkerNamespaceOption = None,
) -> None:
    """Run workers against Postgres until SIGTERM/SIGINT (a second signal forces the stop)."""
    from stem_pg.worker.settings import WorkerSettings
    from stem_pg.worker.supervisor import supervise

    stem = load_app(app_spec)
    stem.namespace = common.worker_namespace(namespace)
    config = common.config()
    subscription = RoutingSubscription.build(stem.routing, queues=tuple(queue or config.worker_queues))
    settings = WorkerSettings(
        queues=subscription.queues,
        concurrency=concurrency,
        prefetch_multiplier=prefetch_multiplier or config.prefetch_multiplier,
        lease_seconds=lease,
        shutdown_grace=grace,
        poll_interval=poll_interval,
    )
    supervise(stem, settings, processes)


@app.command("status")
def status_command(
    namespace: common.WorkerNamespaceOption = None,
    stale_after: Annotated[
        float,
        typer.Option(
            "--stale-after",
            min=1,
            help="Seconds without a heartbeat before a worker counts as stale.",
        ),
    ] = 60.0,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """List workers from the heartbeat table: alive, stale or gone."""
    store = WorkerStore(queries_for(common.worker_namespace(namespace)))
    with connection(common.database_url(url), role="cli") as conn:
        rows = [asdict(w) for w in store.list(conn, stale_after=stale_after)]
    if json:
        common.print_json(rows)
        return
    common.print_table(
        rows,
        ["id", "status", "host", "pid", "queues", "concurrency", "started_at", "last_heartbeat_at"],
    )
