"""The ``stem`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import logging
import sys
import traceback

import psycopg
import typer

from stem_pg.cli import common, demo_cmd, dlq_cmd, routing_cmd, schedule_cmd, tasks_cmd, wf_cmd, worker_cmd
from stem_pg.cli.beat_cmd import beat_command
from stem_pg.cli.health_cmd import health_command
from stem_pg.cli.migrate_cmd import migrate_command
from stem_pg.cli.roles_cmd import roles_command
from stem_pg.core.errors import StemError
from stem_pg.core.redaction import install_log_redaction, one_line, redact
from stem_pg.db.missing import not_migrated

app = typer.Typer(
    name="stem",
    help="stem_pg: a job system on PostgreSQL alone. Queues, workers, schedules and workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("migrate")(migrate_command)
app.command("roles")(roles_command)
app.command("health")(health_command)
app.command("demo")(demo_cmd.demo_command)
app.add_typer(routing_cmd.app, name="routing")
app.add_typer(worker_cmd.app, name="worker")
app.add_typer(tasks_cmd.app, name="tasks")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(schedule_cmd.app, name="schedule")
app.command("beat")(beat_command)
app.add_typer(wf_cmd.app, name="wf")


def main() -> None:
    """Entry point of the ``stem`` script: StemErrors and database errors become one clean
    line and exit 1; no output (log lines, a crash's traceback) shows a password."""
    install_log_redaction()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("stem_pg").setLevel(logging.INFO)
    try:
        app(prog_name="stem")
    except StemError as exc:
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except TimeoutError as exc:  # a --wait that ran out: the task or run goes on without us
        typer.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(1)
    except psycopg.Error as exc:  # libpq's text may quote a URL, or a token of the password
        if (missing := not_migrated(exc, common.RESOLVED)) is not None:
            typer.echo(f"error: {missing}", err=True)
            sys.exit(1)
        typer.echo(f"error: {type(exc).__name__}: {one_line(str(exc))}", err=True)
        sys.exit(1)
    except Exception:  # a bug: its traceback is worth showing, with no password in it
        typer.echo(redact(traceback.format_exc()).rstrip(), err=True)
        sys.exit(1)
