"""``stem dlq``: inspect, replay and purge dead letters."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from stem_pg.cli import common
from stem_pg.core.durations import parse_since

if TYPE_CHECKING:  # the stores load psycopg: only the commands that run import them
    from stem_pg.db.stores.control import SyncConn
    from stem_pg.db.stores.dead_letters import DeadLetterDetail, DeadLetterFilter, DeadLetterStore

app = typer.Typer(
    help="Inspect, replay and purge dead letters (jobs that failed for good).", no_args_is_help=True
)

QueueOption = Annotated[str | None, typer.Option("--queue", "-Q", help="Only dead letters of this queue.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only those that died since: a duration back (1h, 30m) or an ISO time."),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="At most this many.")]


def _filter(queue: str | None, since: str | None, limit: int) -> DeadLetterFilter:
    from stem_pg.db.stores.dead_letters import DeadLetterFilter

    moment: datetime | None = None
    if since:
        try:
            moment = parse_since(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).removeprefix("--since: "), param_hint="--since") from None
    return DeadLetterFilter(queue=queue, since=moment, limit=limit)


@app.command("list")
def list_command(
    queue: QueueOption = None,
    since: SinceOption = None,
    limit: LimitOption = 50,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    json: common.JsonOption = False,
) -> None:
    """List dead letters that were not replayed yet, newest first."""
    store = _store(namespace)
    with _connection(url) as conn:
        rows = [asdict(d) for d in store.list(conn, where=_filter(queue, since, limit))]
    if json:
        common.print_json(rows)
    else:
        common.print_table(rows, ["id", "task_id", "task", "queue", "reason", "attempts", "dead_at", "error"])


@app.command("show")
def show_command(
    key: Annotated[str, typer.Argument(help="The dead letter's id or its task id.")],
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Show a dead letter with its arguments and full error history (JSON)."""
    store = _store(namespace)
    with _connection(url) as conn:
        found = store.show(conn, key=key)
    if not found:
        typer.echo(f"error: no dead letter {key!r}", err=True)
        raise typer.Exit(1)
    common.print_json([asdict(d) for d in found])


@app.command("replay")
def replay_command(
    key: Annotated[str | None, typer.Argument(help="Replay only this dead letter (id or task id).")] = None,
    queue: QueueOption = None,
    since: SinceOption = None,
    limit: LimitOption = 100,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")
    ] = False,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Enqueue dead letters again under their original task ids (an ID that names no dead
    letter left to replay exits 1)."""
    where = _filter(queue, since, limit)
    store = _store(namespace)
    with _connection(url) as conn:
        if dry_run:
            rows = [d for d in store.list(conn, where=where) if key is None or key in (str(d.id), d.task_id)]
            typer.echo(f"would replay {len(rows)} dead letters:")
            common.print_table([asdict(d) for d in rows], ["id", "task_id", "task", "queue", "reason"])
            return
        replayed = store.replay(conn, where=where, key=key)
        if key is not None and not replayed:
            typer.echo(f"error: {_why_not_replayed(store.show(conn, key=key), key)}", err=True)
            raise typer.Exit(1)
    typer.echo(f"replayed {len(replayed)} dead letters")
    for task_id in replayed:
        typer.echo(task_id)


def _why_not_replayed(found: list[DeadLetterDetail], key: str) -> str:
    if not found:
        return f"no dead letter {key!r} (give its id or its task id, as `stem dlq list` shows them)"
    if all(d.replayed_at is not None for d in found):
        return f"dead letter {key!r} was already replayed at {found[0].replayed_at}"
    return f"dead letter {key!r} does not match --queue/--since, or is being replayed right now"


@app.command("purge")
def purge_command(
    queue: QueueOption = None,
    since: SinceOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Delete dead letters for good (all of them, or those matching --queue/--since)."""
    where = _filter(queue, since, 1_000_000)
    store = _store(namespace)
    with _connection(url) as conn:
        if dry_run or not yes:
            count = len(store.list(conn, where=where))
            if dry_run:
                typer.echo(f"would purge {count} dead letters (not counting replayed ones)")
                return
            typer.confirm(f"Delete {count} dead letters (plus any already replayed)?", abort=True)
        typer.echo(f"purged {store.purge(conn, where=where)} dead letters")


def _store(namespace: str | None) -> DeadLetterStore:
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.dead_letters import DeadLetterStore

    return DeadLetterStore(queries_for(common.namespace(namespace)))


def _connection(url: str | None) -> AbstractContextManager[SyncConn]:
    from stem_pg.db.connect import connection

    return connection(common.database_url(url), role="cli")
