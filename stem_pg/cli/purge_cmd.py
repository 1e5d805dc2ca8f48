"""``stem purge``: delete the waiting jobs of one queue (running jobs, results and dead letters stay)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stem_pg.cli import common

PURGED = "purged by stem purge"


def purge_command(
    queue: Annotated[str, typer.Option("--queue", "-Q", help="The queue whose waiting jobs to delete.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print how many jobs would be deleted; delete nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking (needed when stdin is not a terminal).")
    ] = False,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Delete the waiting jobs (ready or scheduled) of a queue in the namespace.

    Running jobs finish; results and dead letters stay. A purged job never runs: like a revoked
    one, its result says cancelled ("purged by stem purge") for a day.
    """
    from stem_pg.client.backend import DEFAULT_RESULT_TTL
    from stem_pg.core.envelope import check_name
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.queues import QueueStore

    check_name(queue, what="--queue")
    queries = queries_for(common.namespace(namespace))
    where = f"queue {queue!r} in namespace {queries.namespace!r}"
    store = QueueStore(queries)
    with connection(common.database_url(url), role="cli") as conn:
        count = store.waiting(conn, queue=queue)
        if dry_run:
            typer.echo(f"would purge {count} waiting jobs of {where}")
            return
        if count == 0:
            typer.echo(f"purged 0 jobs: no job waits in {where}")
            return
        if not yes:
            if not sys.stdin.isatty():
                typer.echo(
                    f"error: not purging {count} waiting jobs of {where}: stdin is not a terminal to "
                    "confirm; pass --yes",
                    err=True,
                )
                raise typer.Exit(2)
            typer.confirm(f"Delete {count} waiting jobs of {where}?", abort=True)
        purged = store.purge(conn, queue=queue, result_ttl=DEFAULT_RESULT_TTL, error=PURGED)
        typer.echo(f"purged {purged} waiting jobs of {where}")
