"""``stem worker status --follow``: a line per heartbeat as it happens, from the namespace's
heartbeat topic, and a line per change the workers table shows (the fallback when no
notification comes: a worker gone stale, one whose NOTIFY a pooler dropped)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from stem_pg.core.human import count_text, duration_text

if TYPE_CHECKING:
    import psycopg

    from stem_pg.core.heartbeats import Beat
    from stem_pg.db.stores.workers import WorkerRow, WorkerStore


def follow(
    conn: psycopg.Connection[Any],
    store: WorkerStore,
    namespace: str,
    *,
    stale_after: float,
    interval: float,
    as_json: bool,
    table: list[str],
) -> None:
    """Print the workers, then every heartbeat and every change of status until Ctrl-C; the
    table is read again every ``interval`` seconds whatever the topic says."""
    from stem_pg.cli import common
    from stem_pg.db.heartbeats import heartbeats, listen_heartbeats

    listen_heartbeats(conn, namespace)  # before the first read: no beat falls in between
    try:
        rows = store.list(conn, stale_after=stale_after)
        if as_json:
            for row in rows:
                _json_line("worker", asdict(row))
        else:
            common.print_table([asdict(w) for w in rows], table)
        seen = {row.id: row.status for row in rows}
        while True:
            for beat in heartbeats(conn, timeout=interval):
                _print_beat(beat, as_json)
                seen[beat.worker] = "gone" if beat.status == "stopped" else "alive"
            for row in store.list(conn, stale_after=stale_after):
                if seen.get(row.id) != row.status:
                    seen[row.id] = row.status
                    _print_row(row, as_json)
    except KeyboardInterrupt:
        return


def _print_beat(beat: Beat, as_json: bool) -> None:
    if as_json:
        _json_line("heartbeat", asdict(beat))
        return
    typer.echo(
        f"{_now()}  {beat.worker}  {beat.status}: {count_text(beat.inflight)}/{beat.concurrency} in flight,"
        f" {count_text(beat.processed)} processed, {count_text(beat.failed)} failed,"
        f" up {duration_text(beat.uptime)}"
    )


def _print_row(row: WorkerRow, as_json: bool) -> None:
    if as_json:
        _json_line("worker", asdict(row))
        return
    silent = (datetime.now(UTC) - row.last_heartbeat_at).total_seconds()
    typer.echo(f"{_now()}  {row.id}  {row.status}: last heartbeat {duration_text(max(0.0, silent))} ago")


def _json_line(event: str, fields: dict[str, Any]) -> None:
    typer.echo(json.dumps({"event": event, **fields}, default=str))


def _now() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")
