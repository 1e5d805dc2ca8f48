"""``stem worker ping|stats|inspect|shutdown|pause|resume|revoke``: the control plane, thin.

Registered on the ``stem worker`` group by ``worker_cmd``; the logic is in
``stem_pg.client.control``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from stem_pg.cli import common
from stem_pg.core.control import DEFAULT_TIMEOUT, SHUTDOWN_MODES, ShutdownMode
from stem_pg.core.durations import parse_duration

if TYPE_CHECKING:  # the client loads psycopg: only the commands that run import it
    from stem_pg.client.control import Control, ControlResult


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, what="duration")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


WorkerOption = Annotated[
    list[str] | None,
    typer.Option("--worker", "-w", help="Only this worker id (repeatable). Default: every worker."),
]
TimeoutOption = Annotated[
    str,
    typer.Option("--timeout", "-t", help="How long to wait for replies (5s, 1m, or seconds)."),
]


def _control(namespace: str | None, url: str | None) -> Control:
    from stem_pg.client.control import Control

    return Control(common.listening_url(common.database_url(url)), common.worker_namespace(namespace))


def _timeout(value: str) -> float:
    seconds = _seconds(value)
    assert seconds is not None
    return seconds


def register(app: typer.Typer) -> None:
    """Add the control commands to the ``stem worker`` group."""
    app.command("ping")(ping_command)
    app.command("stats")(stats_command)
    app.command("inspect")(inspect_command)
    app.command("shutdown")(shutdown_command)
    app.command("pause")(pause_command)
    app.command("resume")(resume_command)
    app.command("revoke")(revoke_command)


def ping_command(
    worker: WorkerOption = None,
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Ask workers to answer; list who did and who stayed silent."""
    result = _control(namespace, url).ping(worker or (), _timeout(timeout))
    _finish(result, json_out, lambda: _table(result, ["reply"], lambda data: {"reply": "pong"}))


def stats_command(
    worker: WorkerOption = None,
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Counters of each worker: inflight, concurrency, processed/failed, queues, uptime, heartbeat."""
    result = _control(namespace, url).stats(worker or (), _timeout(timeout))
    columns = [
        "inflight", "active", "reserved", "concurrency", "prefetch_limit", "processed", "succeeded",
        "failed", "retried", "queues", "paused", "broadcasts", "uptime", "last_heartbeat",
    ]  # fmt: skip
    _finish(result, json_out, lambda: _table(result, columns, lambda data: data))


LIMIT_COLUMNS = ["kind", "scope", "per_second", "burst", "concurrency", "key_field", "fail_open"]


def inspect_command(
    worker: WorkerOption = None,
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """What each worker runs now, holds in reserve, knows (tasks), refuses (revoked, paused) and limits."""
    result = _control(namespace, url).inspect(worker or (), _timeout(timeout))

    def render() -> None:
        for worker_id, reply in sorted(result.replies.items()):
            typer.echo(f"== {worker_id}")
            if not reply.ok:
                typer.echo(f"error: {reply.error}")
                continue
            data = reply.data
            for section in ("active", "reserved", "broadcasts"):
                typer.echo(f"{section}:")
                common.print_table(data.get(section, []), ["id", "task", "queue", "attempt", "runtime"])
            for key in ("registered", "revoked", "queues", "paused", "limited_queues"):
                typer.echo(f"{key}: {', '.join(data.get(key, [])) or '-'}")
            if data.get("limits"):
                typer.echo("limits (their state: SELECT * FROM <namespace>.limiter_state):")
                common.print_table(data["limits"], LIMIT_COLUMNS)
        _missing(result)

    _finish(result, json_out, render)


def shutdown_command(
    mode: Annotated[
        str, typer.Option("--mode", help="warm: finish running tasks; soft: interrupt them; hard: stop now.")
    ] = "warm",
    worker: WorkerOption = None,
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Stop workers (every worker of the namespace unless --worker names some)."""
    if mode not in SHUTDOWN_MODES:
        raise typer.BadParameter(f"--mode must be one of {', '.join(SHUTDOWN_MODES)}, got {mode!r}")
    chosen: ShutdownMode = mode
    result = _control(namespace, url).shutdown(chosen, worker or (), _timeout(timeout))
    _finish(result, json_out, lambda: _table(result, ["shutdown"], lambda data: data))


def pause_command(
    queue: Annotated[str, typer.Option("--queue", "-Q", help="The queue to pause.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the pause).")] = None,
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Pause a queue in the namespace: no worker claims from it until resumed (survives restarts)."""
    result = _control(namespace, url).pause(queue, reason=reason, by="cli", timeout=_timeout(timeout))
    _finish(
        result,
        json_out,
        lambda: _acks(f"queue {queue!r} paused", result),
        strict=False,
    )


def resume_command(
    queue: Annotated[str, typer.Option("--queue", "-Q", help="The queue to resume.")],
    timeout: TimeoutOption = f"{DEFAULT_TIMEOUT:g}s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Resume a paused queue."""
    result = _control(namespace, url).resume(queue, timeout=_timeout(timeout))
    lifted = result.queue
    if lifted is None:
        headline = f"queue {queue!r} was not paused; nothing changed"
    else:  # the reason is the lifted pause's: say so, not as if it were the resume's
        why = f": {lifted.reason}" if lifted.reason else ""
        by = f" by {lifted.paused_by}" if lifted.paused_by else ""
        headline = f"queue {queue!r} resumed (paused since {lifted.paused_at:%Y-%m-%d %H:%M:%S %Z}{by}{why})"
    _finish(result, json_out, lambda: _acks(headline, result, show_reason=False), strict=False)


def revoke_command(
    task: Annotated[list[str], typer.Option("--task", "-T", help="Task id to revoke (repeatable).")],
    terminate: Annotated[
        bool, typer.Option("--terminate", help="Also stop it if it is running right now.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Kept with the cancelled task.")] = None,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="How long workers honour the revoke (default 1d)."),
    ] = None,
    timeout: TimeoutOption = "2s",
    namespace: common.WorkerNamespaceOption = None,
    url: common.UrlOption = None,
    json_out: common.JsonOption = False,
) -> None:
    """Revoke tasks: waiting ones are cancelled, running ones never start again (--terminate stops them).

    Finished tasks are left alone, and the answer says so.
    """
    result = _control(namespace, url).revoke(
        task,
        terminate=terminate,
        reason=reason,
        expires_in=_seconds(expires_in),
        timeout=_timeout(timeout),
    )

    def render() -> None:
        common.print_table(result.to_dict()["revokes"], ["task_id", "outcome", "state", "message"])
        terminated = sorted({i for r in result.replies.values() for i in r.data.get("terminated", [])})
        if terminated:
            typer.echo(f"terminated: {', '.join(terminated)}")

    _finish(result, json_out, render, strict=False)


# -- output ----------------------------------------------------------------------------


def _finish(result: ControlResult, json_out: bool, render: Any, *, strict: bool = True) -> None:
    """Print; exit 1 when nobody answered a command that needs answers."""
    if json_out:
        common.print_json(result.to_dict())
    else:
        render()
    if strict and not result.replies:
        typer.echo("no worker replied", err=True)
        raise typer.Exit(1)


def _table(result: ControlResult, columns: list[str], pick: Any) -> None:
    rows: list[dict[str, Any]] = []
    for worker_id, reply in sorted(result.replies.items()):
        data = pick(reply.data) if reply.ok else {columns[0]: f"error: {reply.error}"}
        rows.append({"worker": worker_id, **data})
    rows.extend({"worker": worker_id, columns[0]: "no reply"} for worker_id in result.missing)
    common.print_table(rows, ["worker", *columns])


def _acks(headline: str, result: ControlResult, *, show_reason: bool = True) -> None:
    typer.echo(headline)
    if show_reason and result.queue is not None and result.queue.reason:
        typer.echo(f"reason: {result.queue.reason}")
    acknowledged = sorted(result.replies)
    typer.echo(f"acknowledged by {len(acknowledged)} worker(s): {', '.join(acknowledged) or '-'}")
    _missing(result)


def _missing(result: ControlResult) -> None:
    if result.missing:
        typer.echo(f"no reply from: {', '.join(result.missing)}")
