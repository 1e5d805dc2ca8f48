"""``stem schedule``: list, show, apply, enable, disable, delete entries; preview a spec."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.core.errors import ScheduleError
from stem_pg.core.schedule_spec_parse import spec_from_json
from stem_pg.core.schedule_specs import next_fires
from stem_pg.core.schedules import entry_from_row

if TYPE_CHECKING:  # psycopg and yaml: only the commands that use them import them
    from stem_pg.client.schedules import Schedules
    from stem_pg.db.stores.schedules import ScheduleRow

app = typer.Typer(
    help="Manage beat's schedule entries (changes reach running beats at once).", no_args_is_help=True
)

NameArgument = Annotated[str, typer.Argument(help="The entry's name.")]
VersionOption = Annotated[
    int | None,
    typer.Option("--version", help="Only if the entry is still at this version (optimistic locking)."),
]


def _schedules(namespace: str | None, url: str | None) -> Schedules:
    from stem_pg.client.schedules import Schedules

    return Schedules(common.database_url(url), common.namespace(namespace))


def _describe(row: ScheduleRow) -> str:
    try:
        return spec_from_json(row.spec).describe()
    except ValueError:
        return "(invalid spec)"


def _state(row: ScheduleRow) -> str:
    if not row.enabled:
        return "disabled"
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        return "expired"
    return "done" if row.next_run_at is None else "enabled"


@app.command("list")
def list_command(
    namespace: common.NamespaceOption = None, url: common.UrlOption = None, json: common.JsonOption = False
) -> None:
    """List entries with their next and last runs."""
    rows = _schedules(namespace, url).list()
    if json:
        common.print_json([asdict(r) for r in rows])
        return
    table = [{**asdict(r), "spec": _describe(r), "state": _state(r)} for r in rows]
    columns = ["name", "task", "spec", "state", "next_run_at", "last_run_at", "total_runs", "last_error"]
    common.print_table(table, [*columns, "version"])


@app.command("show")
def show_command(
    name: NameArgument,
    fires: Annotated[int, typer.Option("--fires", min=0, help="How many recent fires to show.")] = 10,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Show one entry (JSON) with its latest fires."""
    schedules = _schedules(namespace, url)
    row = schedules.get(name)
    if row is None:
        typer.echo(f"error: no schedule entry {name!r}", err=True)
        raise typer.Exit(1)
    data: dict[str, Any] = {**asdict(row), "describe": _describe(row), "state": _state(row)}
    data["recent_fires"] = [asdict(f) for f in schedules.fires(name, limit=fires)] if fires else []
    common.print_json(data)


@app.command("apply")
def apply_command(
    file: Annotated[str, typer.Option("--file", "-f", help="The schedule YAML file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete entries the file does not list.")
    ] = False,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Create or update the file's entries (all or nothing); running beats pick them up."""
    from stem_pg.config.schedule_file import load_schedule_file

    entries = load_schedule_file(file)
    plan = _schedules(namespace, url).apply(entries, prune=prune, dry_run=dry_run)
    verb = "would " if dry_run else ""
    for change in plan.changes:
        if change.action == "unchanged":
            typer.echo(f"  unchanged {change.name}")
        else:
            detail = f" ({', '.join(change.fields)})" if change.fields else ""
            typer.echo(f"  {verb}{change.action} {change.name}{detail}")
    summary = ", ".join(f"{plan.count(a)} {a}" for a in ("create", "update", "delete", "unchanged"))
    typer.echo(f"{'dry run: nothing changed; ' if dry_run else ''}{summary}")


@app.command("delete")
def delete_command(
    name: NameArgument,
    version: VersionOption = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Delete an entry."""
    _schedules(namespace, url).delete(name, version=version)
    typer.echo(f"deleted {name}")


@app.command("enable")
def enable_command(
    name: NameArgument,
    version: VersionOption = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Enable an entry; its next fire is computed from now (missed fires are not made up)."""
    new = _schedules(namespace, url).set_enabled(name, True, version=version)
    typer.echo(f"enabled {name} (version {new})")


@app.command("disable")
def disable_command(
    name: NameArgument,
    version: VersionOption = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Disable an entry; beats stop firing it at once."""
    new = _schedules(namespace, url).set_enabled(name, False, version=version)
    typer.echo(f"disabled {name} (version {new})")


@app.command("dry-run")
def dry_run_command(
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec", help="A spec: 'every:5m', '0 9 * * *', 'cron: 0 9 * * *', '{solar: sunset, ...}'."
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Preview a stored entry instead.")] = None,
    count: Annotated[int, typer.Option("--count", min=1, max=10_000, help="How many fire times.")] = 5,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="Zone for cron/calendar specs that name none.")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Start after this ISO time (default now).")
    ] = None,
    namespace: common.NamespaceOption = None,
    url: common.UrlOption = None,
) -> None:
    """Print the next fire times of a spec (UTC and, for zoned specs, local time)."""
    if (spec is None) == (name is None):
        raise typer.BadParameter("give either --spec or --name", param_hint="--spec")
    if spec is not None:
        from stem_pg.config.schedule_file import parse_spec_text

        parsed = parse_spec_text(spec, timezone=timezone)
    else:
        row = _schedules(namespace, url).get(str(name))
        if row is None:
            raise ScheduleError(f"no schedule entry {name!r}")
        parsed = entry_from_row(asdict(row)).spec
    after = datetime.now(UTC)
    if start is not None:
        try:
            after = datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise typer.BadParameter(f"{start!r} is not an ISO time", param_hint="--start") from None
        after = after if after.tzinfo else after.replace(tzinfo=UTC)
    zone = getattr(parsed, "timezone", None)
    typer.echo(parsed.describe())
    for moment in next_fires(parsed, after, count):
        local = ""
        if zone and zone != "UTC":
            from zoneinfo import ZoneInfo

            local = f"  ({moment.astimezone(ZoneInfo(zone)).isoformat()} {zone})"
        typer.echo(f"{moment.isoformat()}{local}")
