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
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from stem_pg.client.backend import Backend
from stem_pg.client.enqueue import insert_sync
from stem_pg.client.native import driver_connection
from stem_pg.client.results import TaskResult
from stem_pg.core.canvas import CHAIN_RESULT_ARG, CHORD_RESULT_ARG, Canvas, Chain, Chord, Group, Signature
from stem_pg.core.envelope import JobSpec, new_task_id
from stem_pg.core.errors import ConfigError, TaskError
from stem_pg.core.planning import EnqueueRequest, Planner
from stem_pg.core.storable import shown
from stem_pg.core.workflows import CANVAS_HEADER, CanvasKind
from stem_pg.db.stores.canvas import CanvasMember, CanvasStore


@dataclass
class PlannedMember:
    """One member of a canvas, planned: enqueued at once, or ``later`` by the jobs_done trigger."""

    spec: JobSpec
    later: bool
    result_arg: str | None = None


def apply_canvas(backend: Backend, planner: Planner, canvas: Canvas, connection: Any = None) -> CanvasResult:
    """Write ``canvas`` and enqueue what runs first; ``connection``: a psycopg Connection
    whose transaction the canvas joins (it exists only if that commits)."""
    connection = driver_connection(connection)  # django.db.connection: its psycopg connection
    if planner.tracing is not None:
        with planner.tracing.sending(_size(canvas)):  # one trace: the canvas's (stem_pg.tracing)
            return _apply(backend, planner, canvas, connection)
    return _apply(backend, planner, canvas, connection)


def _apply(backend: Backend, planner: Planner, canvas: Canvas, connection: Any) -> CanvasResult:
    canvas_id = new_task_id()
    kind, members = plan_canvas(planner, canvas_id, canvas)
    now = [m.spec for m in members if not m.later]
    if connection is not None:
        _write(connection, backend, canvas_id, kind, members)
    else:
        with backend.pool.connection() as conn, conn.transaction():
            _write(conn, backend, canvas_id, kind, members)
    backend.wake(now, connection)
    handles = [TaskResult(backend, m.spec.id) for m in members]
    return CanvasResult(backend, canvas_id, kind, handles)


def _size(canvas: Canvas) -> int:
    if isinstance(canvas, Chain):
        return len(canvas.links)
    if isinstance(canvas, Group):
        return len(canvas.members)
    return len(canvas.header.members) + 1 if isinstance(canvas, Chord) else 0


def _write(
    conn: Any, backend: Backend, canvas_id: str, kind: CanvasKind, members: list[PlannedMember]
) -> None:
    if not isinstance(conn, psycopg.Connection):
        raise TaskError(f"connection must be a psycopg Connection, got {type(conn).__name__}")
    CanvasStore(backend.queries).create(
        conn,
        id=canvas_id,
        kind=kind.value,
        size=len(members) - (1 if kind is CanvasKind.CHORD else 0),
        result_ttl=backend.result_ttl,
        members=[
            CanvasMember(m.spec.id, m.spec.task, _planned_job(m.spec) if m.later else None, m.result_arg)
            for m in members
        ],
    )
    insert_sync(conn, backend.queries, [m.spec for m in members if not m.later])


def plan_canvas(planner: Planner, canvas_id: str, canvas: Canvas) -> tuple[CanvasKind, list[PlannedMember]]:
    """Every member planned (nothing is written before all are valid); an error names the member.
    Members enqueued later (``later``) take the previous result as ``result_arg``, if any;
    stem_pg.testing's eager mode runs the same plan without a database."""
    if isinstance(canvas, Chain):
        takes = [None, *(sig.result_arg(CHAIN_RESULT_ARG) for sig in canvas.links[1:])]
        links: list[PlannedMember] = []
        for i, (sig, arg) in enumerate(zip(canvas.links, takes, strict=True)):
            follows = links[-1:]  # traced: each link's span links to the previous one's
            links.append(
                _member(
                    planner,
                    canvas_id,
                    sig,
                    later=i > 0,
                    label=f"chain link {i}",
                    result_arg=arg,
                    follows=follows,
                )
            )
        return CanvasKind.CHAIN, links
    if isinstance(canvas, Group):
        return CanvasKind.GROUP, _members(planner, canvas_id, canvas, "group")
    if isinstance(canvas, Chord):
        header = _members(planner, canvas_id, canvas.header, "chord header")
        arg = canvas.callback.result_arg(CHORD_RESULT_ARG)
        callback = _member(
            planner,
            canvas_id,
            canvas.callback,
            later=True,
            label="chord callback",
            result_arg=arg,
            follows=header,
        )
        return CanvasKind.CHORD, [*header, callback]
    raise TaskError(f"app.apply takes a chain, group or chord, got {shown(canvas)}")


def _members(planner: Planner, canvas_id: str, group: Group, kind: str) -> list[PlannedMember]:
    return [
        _member(planner, canvas_id, sig, later=False, label=f"{kind} member {i}")
        for i, sig in enumerate(group.members)
    ]


def _member(
    planner: Planner,
    canvas_id: str,
    sig: Signature,
    *,
    later: bool,
    label: str,
    result_arg: str | None = None,
    follows: list[PlannedMember] | None = None,
) -> PlannedMember:
    options = {k: v for k, v in sig.options.items() if k != "result_arg"}
    headers = {**(options.pop("headers", None) or {}), CANVAS_HEADER: canvas_id}
    if follows and planner.tracing is not None:
        headers.update(planner.tracing.links([m.spec.headers for m in follows]))
    try:
        spec = planner.plan(EnqueueRequest(sig.task, sig.kwargs, headers=headers, **options))
    except (TaskError, ConfigError) as exc:
        raise type(exc)(f"{label}: {exc}") from None
    if result_arg is not None and planner.signing is not None:
        # The jobs_done trigger adds the previous result as ``result_arg``: the signature
        # leaves that argument out (and says so), covering everything the producer wrote.
        spec.headers = planner.sign(spec.id, spec.task, sig.kwargs, json.loads(spec.headers), free=result_arg)
    # A canvas member is one specific job: unique-task deduplication does not apply.
    return PlannedMember(replace(spec, unique_key=None, unique_for=None), later, result_arg)


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

    def __init__(self, backend: Backend, canvas_id: str, kind: CanvasKind, members: list[TaskResult]) -> None:
        self.backend = backend
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
        with self.backend.pool.connection() as conn:
            found = CanvasStore(self.backend.queries).status(conn, id=self.id)
        return None if found is None else asdict(found)
