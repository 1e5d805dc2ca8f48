"""The ``stem`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from stem_pg.cli import (
    common,
    demo_cmd,
    dlq_cmd,
    embedded_cmd,
    metrics_cmd,
    routing_cmd,
    schedule_cmd,
    tasks_cmd,
    wf_cmd,
    worker_cmd,
)
from stem_pg.cli.beat_cmd import beat_command
from stem_pg.cli.check_cmd import check_command
from stem_pg.cli.dashboard_cmd import dashboard_command
from stem_pg.cli.doctor_cmd import doctor_command
from stem_pg.cli.health_cmd import health_command
from stem_pg.cli.migrate_cmd import migrate_command
from stem_pg.cli.observe_cmd import observe_command
from stem_pg.cli.purge_cmd import purge_command
from stem_pg.cli.roles_cmd import roles_command
from stem_pg.cli.shell_cmd import shell_command
from stem_pg.core.errors import StemError
from stem_pg.core.redaction import install_log_redaction, one_line, redact


class _Group(TyperGroup):
    """Lists each command with its whole first sentence, wrapped, where Click cuts it to fit
    one line ("Create or upgrade a namespace's schema with alembic (the...")."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:  # Typer's vendored Click types
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=_Group,
    name="stem",
    help="stem_pg: a job system on PostgreSQL alone. Queues, workers, schedules and workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help wraps long texts at any width; rich's boxes cut options and their help
    # short ("STEM_WORKER_QUEUE…") on an 80-column terminal, and importing rich costs 50 ms.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"stem_pg {version('stem_pg')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version of stem_pg and exit."
        ),
    ] = False,
) -> None:
    """stem_pg: a job system on PostgreSQL alone. Queues, workers, schedules and workflows."""


app.command("migrate")(migrate_command)
app.command("roles")(roles_command)
app.command("health")(health_command)
app.command("doctor")(doctor_command)
app.command("check")(check_command)
app.command("observe")(observe_command)
app.command("demo")(demo_cmd.demo_command)
app.add_typer(routing_cmd.app, name="routing", cls=_Group)
app.add_typer(worker_cmd.app, name="worker", cls=_Group)
app.add_typer(tasks_cmd.app, name="tasks", cls=_Group)
app.add_typer(dlq_cmd.app, name="dlq", cls=_Group)
app.add_typer(schedule_cmd.app, name="schedule", cls=_Group)
app.command("beat")(beat_command)
app.command("purge")(purge_command)
app.add_typer(wf_cmd.app, name="wf", cls=_Group)
app.add_typer(embedded_cmd.app, name="embedded", cls=_Group)
app.command("dashboard")(dashboard_command)
app.command("shell")(shell_command)
app.add_typer(metrics_cmd.app, name="metrics", cls=_Group)


def main() -> None:
    """Entry point of the ``stem`` script: StemErrors and database errors become one clean
    line and exit 1; no output (log lines, a crash's traceback) shows a password."""
    _guarded(lambda: app(prog_name="stem"))


def run_command(path: Sequence[str], args: Sequence[str], *, prog_name: str) -> None:
    """Run the ``stem`` command at ``path`` (``("worker", "run")``) with ``args``, as ``main``
    runs it, for another entry point (``manage.py stem_worker``: its usage and --help name
    ``prog_name``). Exits as ``main`` does."""
    import typer.main

    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    _guarded(lambda: command.main(args=list(args), prog_name=prog_name))


def _guarded(run: Callable[[], object]) -> None:
    install_log_redaction()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("stem_pg").setLevel(logging.INFO)
    try:
        run()
    except StemError as exc:
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except TimeoutError as exc:  # a --wait that ran out: the task or run goes on without us
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except Exception as exc:
        if _is_database_error(exc):  # libpq's text may quote a URL, or a token of the password
            from stem_pg.db.missing import not_migrated

            missing = not_migrated(exc, common.RESOLVED)
            line = str(missing) if missing is not None else f"{type(exc).__name__}: {one_line(str(exc))}"
            typer.echo(f"error: {line}", err=True)
        else:  # a bug: its traceback is worth showing, with no password in it
            typer.echo(redact(traceback.format_exc()).rstrip(), err=True)
        sys.exit(1)


def _is_database_error(exc: Exception) -> bool:
    """A psycopg error, without importing psycopg (only commands that use a database load it)."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
