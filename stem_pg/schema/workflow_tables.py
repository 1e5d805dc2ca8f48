"""The canvas and workflow tables of migration ``0004`` as SQLAlchemy metadata (see ``schema.tables``).

The ``workflow_runs`` / ``workflow_steps`` views, the ``jobs_done`` trigger and
its functions are not tables and are not described here.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION, JSONB

from stem_pg.core.workflows import CanvasKind, CanvasState, MemberState, RunStatus, StepKind
from stem_pg.schema.control_tables import _moment, _one_of


def add_workflow_tables(metadata: MetaData) -> None:
    """Add the tables of migration 0004 to ``metadata``."""
    _canvases(metadata)
    _canvas_members(metadata)
    _wf_runs(metadata)
    _wf_steps(metadata)
    _wf_waiters(metadata)


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


def _canvases(metadata: MetaData) -> Table:
    """One row per chain, group or chord; ``pending`` counts unfinished members."""
    canvases = Table(
        "canvases",
        metadata,
        Column("id", Text, primary_key=True),
        Column("kind", Text, nullable=False),
        Column("size", Integer, nullable=False),
        Column("pending", Integer, nullable=False),
        Column("failed", Integer, nullable=False, server_default=text("0")),
        Column("state", Text, nullable=False, server_default=text("'running'::text")),
        Column("error", Text, nullable=True),
        Column("result_ttl", DOUBLE_PRECISION, nullable=False, server_default=text("86400")),
        _moment("created_at", nullable=False, now=True),
        _moment("finished_at"),
        CheckConstraint(_one_of("kind", _values(CanvasKind)), name="canvases_kind_check"),
        CheckConstraint(_one_of("state", _values(CanvasState)), name="canvases_state_check"),
    )
    Index("canvases_created_idx", canvases.c.created_at)
    return canvases


def _canvas_members(metadata: MetaData) -> Table:
    """Members in input order; ``job`` is the planned job of members enqueued later."""
    members = Table(
        "canvas_members",
        metadata,
        Column(
            "canvas_id",
            Text,
            ForeignKey("canvases.id", ondelete="CASCADE", name="canvas_members_canvas_id_fkey"),
            nullable=False,
        ),
        Column("position", Integer, nullable=False),
        Column("task_id", Text, nullable=False),
        Column("task", Text, nullable=False),
        Column("job", JSONB, nullable=True),
        Column("result_arg", Text, nullable=True),
        Column("state", Text, nullable=False, server_default=text("'pending'::text")),
        Column("result", JSONB, nullable=True),
        Column("error", Text, nullable=True),
        _moment("enqueued_at"),
        _moment("finished_at"),
        PrimaryKeyConstraint("canvas_id", "position", name="canvas_members_pkey"),
        CheckConstraint(_one_of("state", _values(MemberState)), name="canvas_members_state_check"),
    )
    Index("canvas_members_task_id_idx", members.c.task_id, unique=True)
    return members


def _wf_runs(metadata: MetaData) -> Table:
    """Durable workflow runs; ``job_id`` is the job that runs or will resume the run."""
    runs = Table(
        "wf_runs",
        metadata,
        Column("id", Text, primary_key=True),
        Column("workflow", Text, nullable=False),
        Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("status", Text, nullable=False, server_default=text("'running'::text")),
        Column("queue", Text, nullable=False),
        Column("priority", SmallInteger, nullable=False, server_default=text("0")),
        Column("max_retries", Integer, nullable=False, server_default=text("3")),
        Column("job_id", Text, nullable=False),
        Column("resumes", Integer, nullable=False, server_default=text("0")),
        Column("result", JSONB, nullable=True),
        Column("error", Text, nullable=True),
        Column(
            "parent_run_id",
            Text,
            ForeignKey("wf_runs.id", ondelete="SET NULL", name="wf_runs_parent_run_id_fkey"),
            nullable=True,
        ),
        Column("parent_step", Text, nullable=True),
        Column("waiting_for", Text, nullable=True),
        _moment("wake_at"),
        _moment("suspended_at"),
        _moment("deadline_at"),
        Column("max_suspended", DOUBLE_PRECISION, nullable=True),
        _moment("created_at", nullable=False, now=True),
        _moment("updated_at", nullable=False, now=True),
        _moment("finished_at"),
        CheckConstraint(_one_of("status", _values(RunStatus)), name="wf_runs_status_check"),
    )
    Index("wf_runs_status_idx", runs.c.status, runs.c.created_at)
    Index(
        "wf_runs_parent_idx",
        runs.c.parent_run_id,
        postgresql_where=text("parent_run_id IS NOT NULL"),
    )
    return runs


def _wf_steps(metadata: MetaData) -> Table:
    """The checkpoint ledger: one row per completed step, sleep, event or child."""
    return Table(
        "wf_steps",
        metadata,
        Column(
            "run_id",
            Text,
            ForeignKey("wf_runs.id", ondelete="CASCADE", name="wf_steps_run_id_fkey"),
            nullable=False,
        ),
        Column("step", Text, nullable=False),
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("output", JSONB, nullable=True),
        Column("error", Text, nullable=True),
        Column("job_id", Text, nullable=True),
        Column("attempt", Integer, nullable=True),
        _moment("finished_at", nullable=False, now=True),
        PrimaryKeyConstraint("run_id", "step", name="wf_steps_pkey"),
        CheckConstraint(_one_of("kind", _values(StepKind)), name="wf_steps_kind_check"),
    )


def _wf_waiters(metadata: MetaData) -> Table:
    """Runs suspended in ``await_event``, by topic."""
    waiters = Table(
        "wf_waiters",
        metadata,
        Column(
            "run_id",
            Text,
            ForeignKey("wf_runs.id", ondelete="CASCADE", name="wf_waiters_run_id_fkey"),
            nullable=False,
        ),
        Column("step", Text, nullable=False),
        Column("topic", Text, nullable=False),
        _moment("deadline_at"),
        _moment("created_at", nullable=False, now=True),
        PrimaryKeyConstraint("run_id", "step", name="wf_waiters_pkey"),
    )
    Index("wf_waiters_topic_idx", waiters.c.topic)
    return waiters
