"""``stem check``: pass/fail health of a namespace's queues, workers and schedules, for probes and cron."""

from __future__ import annotations

from typing import Annotated

import typer

from stem_pg.cli import common
from stem_pg.core.durations import parse_duration
from stem_pg.core.probes import Limits, parse_rate, readings, summary, violations

#: Seconds without a heartbeat before a worker no longer counts (stem worker status' default).
STALE_AFTER = 60.0


def _duration(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, what="duration")
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("duration: "), param_hint=option) from None


def _rate(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_rate(value, what="rate")
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("rate: "), param_hint=option) from None


def check_command(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-Q",
            help="A queue to check (repeatable). Default: every queue with live jobs"
            " or jobs finished in the last 15 minutes.",
        ),
    ] = None,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age", help="Fail when a queue's oldest ready job has waited longer (30s, 5m, 1h)."
        ),
    ] = None,
    max_failed_rate: Annotated[
        str | None,
        typer.Option(
            "--max-failed-rate",
            help="Fail when a larger share of a queue's jobs finished in the last"
            " 15 minutes failed (1%, 0.5%, or a fraction like 0.01).",
        ),
    ] = None,
    min_workers: Annotated[
        int | None,
        typer.Option(
            "--min-workers",
            min=0,
            help="Fail when fewer alive workers (a heartbeat within 60 s)"
            " consume a queue (with no queue to check: the namespace).",
        ),
    ] = None,
    max_schedule_lag: Annotated[
        str | None,
        typer.Option(
            "--max-schedule-lag",
            help="Fail when an enabled schedule entry's next run is overdue by"
            " more (30s, 5m): beat is down or behind.",
        ),
    ] = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Check the namespace's health: exit 0 with one 'ok' line, or 1 with one line per violation.

    Conditions are the ones given: oldest ready job age (--max-age), failure rate over the last
    15 minutes (--max-failed-rate), alive workers per queue (--min-workers) and overdue schedule
    entries (--max-schedule-lag). Readings come from the queue_health view, the workers and the
    schedules tables; no metrics stack needed.
    """
    from stem_pg.core.envelope import check_name
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.probes import ProbeStore

    limits = Limits(
        max_age=_duration(max_age, "--max-age"),
        max_failed_rate=_rate(max_failed_rate, "--max-failed-rate"),
        min_workers=min_workers,
        max_schedule_lag=_duration(max_schedule_lag, "--max-schedule-lag"),
    )
    for name in queue or []:
        check_name(name, what="--queue")
    store = ProbeStore(queries_for(common.namespace(namespace)))
    with connection(common.database_url(url), role="cli") as conn:
        rows = store.queues(conn)
        worker_queues = store.alive_worker_queues(conn, stale_after=STALE_AFTER)
        late = (
            store.late_schedules(conn, max_lag=limits.max_schedule_lag)
            if limits.max_schedule_lag is not None
            else []
        )
    checked = readings(rows, worker_queues, queue or [])
    failed = violations(limits, checked, late, workers_alive=len(worker_queues))
    if failed:
        for line in failed:
            typer.echo(line, err=True)
        raise typer.Exit(1)
    typer.echo(summary(limits, checked, workers_alive=len(worker_queues)))
