"""Applying chains, groups and chords: plan every member, write the canvas and
its first jobs in one transaction, and hand back result handles.

Members enqueued later (chain links after the first, a chord's callback) are
stored as planned jobs; the ``jobs_done`` trigger enqueues them in the
transaction that finishes the job before them, so racing workers and retried
members cannot run a callback twice or skip it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from stem_pg.client.enqueue import insert_sync
from stem_pg.client.results import TaskResult
from stem_pg.core.canvas import CHAIN_RESULT_ARG, CHORD_RESULT_ARG, Canvas, Chain, Chord, Group, Signature
from stem_pg.core.envelope import JobSpec, new_task_id
from stem_pg.core.errors import TaskError
from stem_pg.core.workflows import CANVAS_HEADER, CanvasKind

if TYPE_CHECKING:
    from stem_pg.client.app import Stem


@dataclass
class _Member:
    spec: JobSpec
    later: bool
    result_arg: str | None = None


def apply_canvas(app: Stem, canvas: Canvas, connection: Any = None) -> CanvasResult:
    """Write ``canvas`` and enqueue what runs first; ``connection``: a psycopg Connection
    whose transaction the canvas joins (it exists only if that commits)."""
    canvas_id = new_task_id()
    kind, members = _plan(app, canvas_id, canvas)
    params = {
        "id": canvas_id,
        "kind": kind.value,
        "size": len(members) - (1 if kind is CanvasKind.CHORD else 0),
        "result_ttl": app.result_ttl,
        "position": list(range(len(members))),
        "task_id": [m.spec.id for m in members],
        "task": [m.spec.task for m in members],
        "job": [_planned_job(m.spec) if m.later else None for m in members],
        "result_arg": [m.result_arg for m in members],
    }
    now = [m.spec for m in members if not m.later]
    if connection is not None:
        _write(connection, app, params, now)
    else:
        with app.pool.connection() as conn, conn.transaction():
            _write(conn, app, params, now)
    app.wake(now, connection)
    handles = [TaskResult(app, m.spec.id) for m in members]
    return CanvasResult(app, canvas_id, kind, handles)


def _write(conn: Any, app: Stem, params: dict[str, Any], specs: list[JobSpec]) -> None:
    if not isinstance(conn, psycopg.Connection):
        raise TaskError(f"connection must be a psycopg Connection, got {type(conn).__name__}")
    conn.execute(app.queries["canvas_create"], params)
    insert_sync(conn, app.queries, specs)


def _plan(app: Stem, canvas_id: str, canvas: Canvas) -> tuple[CanvasKind, list[_Member]]:
    if isinstance(canvas, Chain):
        links = [_member(app, canvas_id, sig, later=i > 0) for i, sig in enumerate(canvas.links)]
        for member, sig in zip(links[1:], canvas.links[1:], strict=True):
            member.result_arg = sig.result_arg(CHAIN_RESULT_ARG)
        return CanvasKind.CHAIN, links
    if isinstance(canvas, Group):
        return CanvasKind.GROUP, [_member(app, canvas_id, sig, later=False) for sig in canvas.members]
    if isinstance(canvas, Chord):
        header = [_member(app, canvas_id, sig, later=False) for sig in canvas.header.members]
        callback = _member(app, canvas_id, canvas.callback, later=True)
        callback.result_arg = canvas.callback.result_arg(CHORD_RESULT_ARG)
        return CanvasKind.CHORD, [*header, callback]
    raise TaskError(f"app.apply takes a chain, group or chord, got {canvas!r}")


def _member(app: Stem, canvas_id: str, sig: Signature, *, later: bool) -> _Member:
    from stem_pg.client.app import EnqueueRequest

    options = {k: v for k, v in sig.options.items() if k != "result_arg"}
    headers = {**(options.pop("headers", None) or {}), CANVAS_HEADER: canvas_id}
    spec = app.plan(EnqueueRequest(sig.task, sig.kwargs, headers=headers, **options))
    # A canvas member is one specific job: unique-task deduplication does not apply.
    return _Member(replace(spec, unique_key=None, unique_for=None), later)


def _planned_job(spec: JobSpec) -> str:
    return json.dumps(
        {
            "queue": spec.queue,
            "priority": spec.priority,
            "args": json.loads(spec.args),
            "headers": json.loads(spec.headers),
            "max_retries": spec.max_retries,
            "eta": spec.eta.isoformat() if isinstance(spec.eta, datetime) else None,
            "countdown": spec.countdown,
            "expires_at": spec.expires_at.isoformat() if isinstance(spec.expires_at, datetime) else None,
            "expires_in": spec.expires_in,
            "visibility_timeout": spec.visibility_timeout,
            "acks_late": spec.acks_late,
        }
    )


class CanvasResult:
    """The handle of an applied chain, group or chord.

    ``members`` are the members' TaskResults in input order (a chord's callback
    last). ``get()`` returns: for a chain, the last link's value; for a group, the
    list of member values; for a chord, the callback's value. A chain that stopped
    or a chord whose header failed raises TaskCancelled naming the failed member.
    """

    def __init__(self, app: Stem, canvas_id: str, kind: CanvasKind, members: list[TaskResult]) -> None:
        self.app = app
        self.id = canvas_id
        self.kind = kind
        self.members = members

    def __repr__(self) -> str:
        return f"<CanvasResult {self.kind.value} {self.id} ({len(self.members)} members)>"

    @property
    def last(self) -> TaskResult:
        """The chain's last link or the chord's callback."""
        return self.members[-1]

    def get(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        if self.kind is not CanvasKind.GROUP:
            return self.last.get(timeout, propagate=propagate)
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for member in self.members:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(member.get(remaining, propagate=propagate))
        return values

    async def wait(self, timeout: float | None = None, *, propagate: bool = True) -> Any:
        """The async twin of ``get()``."""
        if self.kind is not CanvasKind.GROUP:
            return await self.last.wait(timeout, propagate=propagate)
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for member in self.members:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(await member.wait(remaining, propagate=propagate))
        return values

    def status(self) -> dict[str, Any] | None:
        """The ``canvases`` row with its members' states (as ``canvas_status`` reads it)."""
        with self.app.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.app.queries["canvas_status"], {"id": self.id})
            return cur.fetchone()
