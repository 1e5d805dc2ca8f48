"""``stem observe``: a namespace's queues, workers, dead letters or schedules as a live table."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.cli.check_cmd import STALE_AFTER
from stem_pg.core.durations import parse_duration
from stem_pg.core.observe import VIEW_NAMES, check_view, check_window, table, with_beats

if TYPE_CHECKING:
    import psycopg
    from rich.table import Table

    from stem_pg.core.heartbeats import Beat
    from stem_pg.db.stores.observe import ObserveStore

#: The shortest --interval: a refresh reads the database each time.
MIN_INTERVAL = 0.1
#: Columns that hold names (left-aligned); the others hold numbers, ages and rates.
_NAME_COLUMNS = frozenset(
    {"queue", "task", "worker", "status", "host", "queues", "name", "enabled", "top reason", "last error"}
)


def _view(value: str) -> str:
    try:
        return check_view(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="VIEW") from None


def _window(value: str) -> str:
    try:
        return check_window(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from None


def _interval(value: str) -> float:
    try:
        seconds = parse_duration(value, what="interval")
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("interval: "), param_hint="--interval") from None
    if seconds < MIN_INTERVAL:
        raise typer.BadParameter(f"{value!r} is shorter than {MIN_INTERVAL:g}s", param_hint="--interval")
    return seconds


def observe_command(
    view: Annotated[
        str,
        typer.Argument(help=f"What to show: {', '.join(VIEW_NAMES)}.", metavar="VIEW", show_default=False),
    ],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh the table in place every --interval until Ctrl-C.")
    ] = False,
    interval: Annotated[
        str, typer.Option("--interval", help="Seconds between refreshes with --watch (2, 500ms, 1m).")
    ] = "2s",
    window: Annotated[
        str,
        typer.Option("--window", help="The queues table's latency window: 1m, 5m or 15m (--json has all)."),
    ] = "5m",
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the rows as JSON (seconds, counts); with --watch one array a line."
        ),
    ] = False,
) -> None:
    """Show the namespace's queues (the queue_health view), workers, dead letters (dlq) or schedules.

    Durations read as people read them (2h 05m, 350ms); --json keeps seconds. With --watch the
    table refreshes in place; the workers view then adds each worker's in-flight, processed and
    failed counts from the heartbeat topic as they arrive.
    """
    from stem_pg.db.connect import connection
    from stem_pg.db.queries import queries_for
    from stem_pg.db.stores.observe import ObserveStore

    view, window, seconds = _view(view), _window(window), _interval(interval)
    resolve = common.worker_namespace if view == "workers" else common.namespace
    ns = resolve(namespace)
    store = ObserveStore(queries_for(ns))
    with connection(common.database_url(url), role="cli") as conn:
        reader = _Reader(conn, store, view, ns, listen=watch and view == "workers")
        if not watch:
            _show_once(reader.read(), view, window, ns, json_output)
            return
        try:
            if json_output:
                _watch_json(reader, seconds)
            else:
                _watch_table(reader, view, window, ns, seconds)
        except KeyboardInterrupt:
            return


class _Reader:
    """Reads one view; for workers, merges in the heartbeats heard since (when it listens)."""

    def __init__(
        self, conn: psycopg.Connection[Any], store: ObserveStore, view: str, ns: str, *, listen: bool
    ):
        self.conn, self.store, self.view = conn, store, view
        self.listening = listen
        self.beats: dict[str, Beat] = {}
        self.rows: list[Any] = []
        if listen:
            from stem_pg.db.heartbeats import listen_heartbeats

            listen_heartbeats(conn, ns)

    def read(self) -> list[Any]:
        if self.view == "queues":
            self.rows = list(self.store.queues(self.conn))
        elif self.view == "workers":
            self.rows = list(self.store.workers(self.conn, stale_after=STALE_AFTER))
        elif self.view == "dlq":
            self.rows = list(self.store.dead_letters(self.conn))
        else:
            self.rows = list(self.store.schedules(self.conn))
        return self.current()

    def current(self) -> list[Any]:
        return with_beats(self.rows, self.beats) if self.view == "workers" else self.rows

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; a listening reader returns at the first heartbeat (True) instead."""
        if not self.listening:
            time.sleep(seconds)
            return False
        from stem_pg.db.heartbeats import heartbeats

        for beat in heartbeats(self.conn, timeout=seconds):
            self.beats[beat.worker] = beat
            return True
        return False


def _show_once(rows: list[Any], view: str, window: str, ns: str, json_output: bool) -> None:
    if json_output:
        common.print_json([asdict(row) for row in rows])
        return
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(_rich_table(rows, view, window, ns, console.width))


def _watch_json(reader: _Reader, seconds: float) -> None:
    while True:
        typer.echo(json.dumps([asdict(row) for row in reader.read()], default=str))
        _until(reader, time.monotonic() + seconds)


def _watch_table(reader: _Reader, view: str, window: str, ns: str, seconds: float) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()

    def draw(rows: list[Any]) -> Table:
        return _rich_table(rows, view, window, ns, console.width)

    with Live(draw(reader.read()), console=console, auto_refresh=False) as live:
        while True:
            deadline = time.monotonic() + seconds
            while reader.wait(max(0.0, deadline - time.monotonic())):  # a heartbeat: show it now
                live.update(draw(reader.current()), refresh=True)
            live.update(draw(reader.read()), refresh=True)


def _until(reader: _Reader, deadline: float) -> None:
    while reader.wait(max(0.0, deadline - time.monotonic())):
        pass


def _rich_table(rows: list[Any], view: str, window: str, ns: str, width: int) -> Table:
    """The table, its rightmost columns left out (and named) when all would not fit ``width``."""
    from rich import box
    from rich.table import Table

    headers, cells = table(view, rows, window=window)
    shown = _fitting(headers, cells, width)
    at = datetime.now(UTC).strftime("%H:%M:%S UTC")
    grid = Table(title=f"{view} in namespace {ns} at {at}", box=box.SIMPLE_HEAD, title_justify="left")
    for header in headers[:shown]:
        grid.add_column(header.upper(), justify="left" if header in _NAME_COLUMNS else "right", no_wrap=True)
    for row in cells:
        grid.add_row(*row[:shown])
    notes = [] if cells else ["(none)"]
    if shown < len(headers):
        notes.append(f"not shown, too narrow: {', '.join(headers[shown:])} (widen the terminal, or --json)")
    grid.caption = "; ".join(notes) or None
    return grid


def _fitting(headers: list[str], cells: list[list[str]], width: int) -> int:
    """How many leading columns fit ``width`` (at least one), each as wide as its widest cell."""
    used = 0
    for i, header in enumerate(headers):
        used += max([len(header), *(len(row[i]) for row in cells)]) + 3  # padding and the rule's gap
        if used > width and i > 0:
            return i
    return len(headers)
