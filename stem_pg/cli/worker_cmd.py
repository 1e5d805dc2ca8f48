"""``stem worker``: run workers, see which are alive, and control them (``control_cmd``)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from stem_pg.cli import common, control_cmd, log_options

app = typer.Typer(help="Run, list and control workers.", no_args_is_help=True)

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
    broadcast: Annotated[
        list[str] | None,
        typer.Option(
            "--broadcast",
            "-B",
            help="Broadcast channel to subscribe to (repeatable). Defaults to STEM_WORKER_BROADCASTS.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="A stable worker id (default host.pid.random; forked processes add -N). With a"
            " stable id a restarted worker gets back the broadcast messages it had not acked.",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Tasks run at once per process.")
    ] = 10,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            help="Worker processes to fork (use every core); they stop if this supervisor dies.",
        ),
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
        typer.Option(
            "--shutdown-grace",
            min=0,
            help="Seconds to let running tasks finish after SIGTERM; then they are put back for a retry.",
        ),
    ] = 30.0,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", min=0.05, help="Seconds between polls when no wake-up arrives."),
    ] = 1.0,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum/--no-vacuum",
            help="Vacuum the jobs table when claimed and finished jobs leave many dead rows"
            " (claims slow down until a vacuum removes them; needs table ownership). Backs off,"
            " with one warning naming it, while an old transaction holds the xmin horizon.",
        ),
    ] = True,
    max_tasks_per_child: Annotated[
        int | None,
        typer.Option(
            "--max-tasks-per-child",
            metavar="N",
            help="Replace a worker process with a fresh one after it started N tasks (it finishes"
            " them first; for handlers that leak).",
        ),
    ] = None,
    max_memory_per_child: Annotated[
        int | None,
        typer.Option(
            "--max-memory-per-child",
            metavar="KIB",
            help="Replace a worker process with a fresh one when its resident memory exceeds KIB"
            " kibibytes after a task (it finishes its running tasks first).",
        ),
    ] = None,
    claim_unregistered: Annotated[
        bool,
        typer.Option(
            "--claim-unregistered",
            help="Also claim jobs of tasks this worker does not register, and dead-letter them"
            " (unregistered_task). By default a worker claims only its registered task names, so"
            " during a rolling deploy an older worker leaves a new task's jobs to a newer worker.",
        ),
    ] = False,
    connections: Annotated[
        str,
        typer.Option(
            "--connections",
            metavar="minimal|per-loop",
            help="minimal (the default): two connections per process (LISTEN, and one the loops"
            " share in turns); per-loop: six, one per loop, so a slow statement of one (a vacuum,"
            " a prune) holds up no other (README, 'Connection budget').",
        ),
    ] = "minimal",
    event_loop: Annotated[
        str,
        typer.Option(
            "--event-loop",
            metavar="asyncio|uvloop",
            help="The workers' event loop: asyncio's own, or uvloop (pip install 'stem_pg[uvloop]').",
        ),
    ] = "asyncio",
    claim_in_flush: Annotated[
        bool,
        typer.Option(
            "--claim-in-flush/--no-claim-in-flush",
            help="Claim into the slots finished jobs free in the transaction that writes their"
            " outcomes (one durable commit for both, where the claim loop's claim is a commit"
            " of its own). Not with --broadcast channels or limited queues. Off by default.",
        ),
    ] = False,
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    direct_url: common.DirectUrlOption = None,
    loglevel: log_options.LogLevelOption = None,
    log_format: log_options.LogFormatOption = None,
    summary_interval: Annotated[
        float,
        typer.Option(
            "--log-summary-interval",
            min=0,
            metavar="SECONDS",
            help="Seconds between the INFO lines counting the tasks processed (none when"
            " nothing was; 0: never).",
        ),
    ] = 60.0,
    metrics_port: common.MetricsPortOption = None,
) -> None:
    """Run workers against Postgres until SIGTERM/SIGINT (a second signal forces the stop).

    A worker refuses to start, with one line, on a database it cannot reach or a namespace
    not migrated to this version; once running, it rides out database outages.

    A worker process retires and is replaced by a fresh one (same pid without --processes)
    when a sync task overruns its hard time_limit, or by --max-tasks-per-child and
    --max-memory-per-child.
    """
    from stem_pg.worker.lean import LeanPlan, become_lean
    from stem_pg.worker.startup import WorkerOptions, loop_factory

    if metrics_port is not None:
        from stem_pg.metrics.exposition import require_client

        require_client()
    log_options.configure(loglevel, log_format)
    common.config()  # a bad STEM_* variable: one line now
    loop_factory(event_loop)  # uvloop missing: one line now, not in each process
    # The command loads nothing more: the lean process (stem_pg.worker.lean), which replaces
    # it, loads the app, checks its namespace is migrated and runs the workers.
    become_lean(
        LeanPlan(
            app_spec=app_spec,
            options=WorkerOptions(
                queues=tuple(queue or ()),
                broadcasts=tuple(broadcast or ()),
                name=name,
                concurrency=concurrency,
                prefetch_multiplier=prefetch_multiplier,
                lease=lease,
                grace=grace,
                poll_interval=poll_interval,
                vacuum=vacuum,
                max_tasks_per_child=max_tasks_per_child,
                max_memory_per_child=max_memory_per_child,
                summary_interval=summary_interval,
                claim_unregistered=claim_unregistered,
                connections=connections,
                event_loop=event_loop,
                claim_in_flush=claim_in_flush,
                url=url,
                namespace=namespace,
                direct_url=direct_url,
            ),
            log_level=loglevel,
            log_format=log_format,
            processes=processes,
            metrics_port=metrics_port,
            sys_path=tuple(sys.path),
        )
    )


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
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="After the list, print a line per heartbeat as workers send it (the"
            " namespace's heartbeat topic) and per change of status, until Ctrl-C.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.1,
            help="With --follow, seconds between reads of the workers table, which catch what"
            " no heartbeat says (a worker gone stale, notifications a pooler drops).",
        ),
    ] = 2.0,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """List workers from the heartbeat table: alive, stale or gone (with --follow: live).

    With --json, --follow prints one JSON object a line: {"event": "worker", ...} for a row
    of the table, {"event": "heartbeat", ...} for a beat (worker, status, host, pid,
    concurrency, inflight, processed, failed, uptime).
    """
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.workers import WorkerStore

    ns = common.worker_namespace(namespace)
    store = WorkerStore(queries_for(ns))
    with connection(common.database_url(url), role="cli") as conn:
        if follow:
            from stem_pg.cli.worker_follow import follow as follow_workers

            follow_workers(
                conn,
                store,
                ns,
                stale_after=stale_after,
                interval=interval,
                as_json=json,
                table=STATUS_COLUMNS,
            )
            return
        rows = [asdict(w) for w in store.list(conn, stale_after=stale_after)]
        if json:
            common.print_json(rows)
        else:
            common.print_table(rows, STATUS_COLUMNS)


STATUS_COLUMNS = ["id", "status", "host", "pid", "queues", "concurrency", "started_at", "last_heartbeat_at"]

control_cmd.register(app)
