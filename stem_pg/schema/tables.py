"""The tables of one namespace as SQLAlchemy metadata: the code's expectation of the schema.

This is what the code expects the migrations to have built; a test compares
it with the migrated database (``alembic.autogenerate.compare_metadata``, plus a
catalog comparison for what autogenerate ignores) so the two cannot drift apart
silently. stem_pg never migrates from it: the DDL stays explicit SQL in
``migrations/``, where a DBA reviews it. It serves Python code that queries with
SQLAlchemy; views, functions and triggers are not described here, and
``sql/schema.sql`` holds the current text of everything the migrations build.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, UUID

from stem_pg.core.namespaces import validate_namespace
from stem_pg.core.states import LIVE_STATES, TERMINAL_STATES, DeadLetterReason, TaskState
from stem_pg.schema.control_tables import _moment, add_control_tables
from stem_pg.schema.workflow_tables import add_workflow_tables


def metadata_for(namespace: str) -> MetaData:
    """The tables of ``namespace`` (schema ``namespace``); raises NamespaceError on a bad name."""
    metadata = MetaData(schema=validate_namespace(namespace))
    _jobs(metadata)
    _results(metadata)
    _result_minutes(metadata)
    _dead_letters(metadata)
    _workers(metadata)
    _schedules(metadata)
    _schedule_fires(metadata)
    _locks(metadata)
    _limiters(metadata)
    add_control_tables(metadata)
    add_workflow_tables(metadata)
    return metadata


def _in(column: str, allowed: Iterable[StrEnum], members: Iterable[StrEnum]) -> str:
    """``column IN (...)`` over ``members`` in the declaration order of ``allowed``.

    Literal SQL (not ``column.in_()``) so the expression carries no bind
    parameters; declaration order matches the migration's text.
    """
    chosen = set(members)
    return f"{column} IN ({', '.join(repr(v.value) for v in allowed if v in chosen)})"


def _jobs(metadata: MetaData) -> Table:
    """Live jobs only (queued, running, retried); terminal ones move to ``results``."""
    jobs = Table(
        "jobs",
        metadata,
        Column("id", Text, primary_key=True),
        Column("seq", BigInteger, Identity(always=True), nullable=False),
        Column("task", Text, nullable=False),
        Column("queue", Text, nullable=False),
        Column("priority", SmallInteger, nullable=False, server_default=text("0")),
        Column("state", Text, nullable=False, server_default=text("'queued'::text")),
        Column("args", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("max_retries", Integer, nullable=False, server_default=text("3")),
        Column("visibility_timeout", Integer, nullable=True),
        Column("acks_late", Boolean, nullable=False, server_default=text("true")),
        _moment("not_before", nullable=False, now=True),
        _moment("expires_at"),
        _moment("enqueued_at", nullable=False, now=True),
        _moment("started_at"),
        Column("lease_token", UUID(as_uuid=True), nullable=True),
        _moment("lease_expires_at"),
        Column("worker_id", Text, nullable=True),
        Column("progress", JSONB, nullable=True),
        Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        # Unique tasks (migration 0002): the key is held while the job is live.
        Column("unique_key", Text, nullable=True),
        _moment("unique_until"),
        # Debounced enqueue (migration 0011): the key, while the job waits to start.
        Column("debounce_key", Text, nullable=True),
        # Rate and concurrency limits (migration 0013): set by the limited claim.
        Column("limit_key", Text, nullable=True),
        CheckConstraint(_in("state", TaskState, LIVE_STATES), name="jobs_state_check"),
        postgresql_with={
            "fillfactor": "80",
            "autovacuum_vacuum_scale_factor": "0.01",
            "autovacuum_vacuum_threshold": "1000",
            "autovacuum_analyze_scale_factor": "0.02",
        },
    )
    # The claim index holds only claimable rows: highest priority first, then due first
    # (migration 0015: the claim never steps over jobs scheduled for later), FIFO among equals.
    Index(
        "jobs_claim_idx",
        jobs.c.queue,
        jobs.c.priority.desc(),
        jobs.c.not_before,
        jobs.c.seq,
        postgresql_where=text(_in("state", TaskState, LIVE_STATES - {TaskState.RUNNING})),
    )
    Index("jobs_lease_idx", jobs.c.lease_expires_at, postgresql_where=text("state = 'running'"))
    # The dashboard's jobs pages, by keyset: the waiting jobs (a claim takes a row out of it;
    # the running ones are read through jobs_lease_idx).
    Index(
        "jobs_enqueued_idx",
        jobs.c.enqueued_at,
        jobs.c.id,
        postgresql_where=text("state IN ('queued', 'retried')"),
    )
    # The expiry sweep (job_cancel_expired) reads waiting jobs with an expiry, and only those.
    Index(
        "jobs_expires_idx",
        jobs.c.expires_at,
        postgresql_where=text(
            _in("state", TaskState, LIVE_STATES - {TaskState.RUNNING}) + " AND expires_at IS NOT NULL"
        ),
    )
    Index(
        "jobs_unique_idx",
        jobs.c.unique_key,
        unique=True,
        postgresql_where=text("unique_key IS NOT NULL"),
    )
    Index(
        "jobs_debounce_idx",
        jobs.c.task,
        jobs.c.debounce_key,
        unique=True,
        postgresql_where=text("debounce_key IS NOT NULL AND state = 'queued'"),
    )
    # What a concurrency limit counts: the jobs running under it, by limit and by queue.
    limited = text("state = 'running' AND limit_key IS NOT NULL")
    Index("jobs_limit_running_idx", jobs.c.limit_key, postgresql_where=limited)
    Index("jobs_limit_queue_running_idx", jobs.c.queue, postgresql_where=limited)
    return jobs


def _limiters(metadata: MetaData) -> Table:
    """Rate buckets and concurrency locks of the declared limits (migration 0013)."""
    return Table(
        "limiters",
        metadata,
        Column("kind", Text, nullable=False),
        Column("scope", Text, nullable=False),
        Column("key", Text, nullable=False, server_default=text("''::text")),
        Column("per_second", DOUBLE_PRECISION, nullable=True),
        Column("burst", DOUBLE_PRECISION, nullable=True),
        Column("concurrency", Integer, nullable=True),
        Column("key_field", Text, nullable=True),
        Column("fail_open", Boolean, nullable=False, server_default=text("true")),
        Column("tokens", DOUBLE_PRECISION, nullable=True),
        _moment("refilled_at", nullable=False, now=True),
        PrimaryKeyConstraint("kind", "scope", "key"),
        CheckConstraint("kind IN ('rate', 'concurrency')", name="limiters_kind_check"),
        postgresql_with={"fillfactor": "50"},
    )


def _results(metadata: MetaData) -> Table:
    """One row per finished task: its terminal state, result or error."""
    results = Table(
        "results",
        metadata,
        Column("id", Text, primary_key=True),
        Column("task", Text, nullable=False),
        Column("queue", Text, nullable=False),
        Column("priority", SmallInteger, nullable=False),
        Column("state", Text, nullable=False),
        Column("result", JSONB, nullable=True),
        Column("error", Text, nullable=True),
        Column("traceback", Text, nullable=True),
        Column("attempts", Integer, nullable=False),
        _moment("enqueued_at", nullable=False),
        _moment("started_at"),
        _moment("finished_at", nullable=False, now=True),
        Column("worker_id", Text, nullable=True),
        _moment("expires_at"),
        CheckConstraint(_in("state", TaskState, TERMINAL_STATES), name="results_state_check"),
        postgresql_with={"autovacuum_vacuum_scale_factor": "0.02"},
    )
    Index("results_finished_idx", results.c.finished_at)
    Index("results_enqueued_idx", results.c.enqueued_at, results.c.id)  # the dashboard's jobs pages
    Index("results_expires_idx", results.c.expires_at, postgresql_where=text("expires_at IS NOT NULL"))
    return results


def _result_minutes(metadata: MetaData) -> None:
    """The dashboard's per-minute chart, rolled up from ``results`` by the workers'
    maintenance (migration 0019): one row per complete minute and queue, and the one-row
    watermark ``result_rollup.rolled_to`` (minutes before it are rolled up)."""
    Table(
        "result_minutes",
        metadata,
        _moment("minute", nullable=False),
        Column("queue", Text, nullable=False),
        Column("finished", BigInteger, nullable=False),
        Column("failed", BigInteger, nullable=False),
        Column("waited", BigInteger, nullable=False),  # results with a started_at
        Column("wait_seconds_sum", DOUBLE_PRECISION, nullable=False),
        PrimaryKeyConstraint("minute", "queue"),
    )
    Table(
        "result_rollup",
        metadata,
        Column("one", Boolean, primary_key=True, server_default=text("true")),
        _moment("rolled_to"),
        CheckConstraint("one", name="result_rollup_one_check"),
    )


def _dead_letters(metadata: MetaData) -> Table:
    """Jobs that failed for good, kept with their arguments for inspection and replay."""
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("task_id", Text, nullable=False),
        Column("task", Text, nullable=False),
        Column("queue", Text, nullable=False),
        Column("priority", SmallInteger, nullable=False),
        Column("args", JSONB, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("max_retries", Integer, nullable=False),
        Column("reason", Text, nullable=False),
        Column("error", Text, nullable=True),
        Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
        Column("attempts", Integer, nullable=False),
        _moment("enqueued_at", nullable=False),
        _moment("dead_at", nullable=False, now=True),
        _moment("replayed_at"),
        CheckConstraint(_in("reason", DeadLetterReason, DeadLetterReason), name="dead_letters_reason_check"),
    )
    Index("dead_letters_queue_idx", dead_letters.c.queue, dead_letters.c.dead_at)
    Index("dead_letters_task_id_idx", dead_letters.c.task_id)
    return dead_letters


def _workers(metadata: MetaData) -> Table:
    """The worker heartbeat table behind ``stem worker status``."""
    return Table(
        "workers",
        metadata,
        Column("id", Text, primary_key=True),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("queues", ARRAY(Text), nullable=False),
        Column("concurrency", Integer, nullable=False),
        _moment("started_at", nullable=False, now=True),
        _moment("last_heartbeat_at", nullable=False, now=True),
        _moment("stopped_at"),
        Column("tasks", JSONB, nullable=True),  # each task's enqueue options (migration 0009)
        # The connections the process may hold (0020; NULL: an older worker's row, counted as 6).
        Column("connections", SmallInteger, nullable=True),
    )


def _schedules(metadata: MetaData) -> Table:
    """Beat's schedule entries (migration 0002); ``version`` is the optimistic lock of edits."""
    schedules = Table(
        "schedules",
        metadata,
        Column("name", Text, primary_key=True),
        Column("task", Text, nullable=False),
        Column("spec", JSONB, nullable=False),
        Column("kwargs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("queue", Text, nullable=True),
        Column("priority", SmallInteger, nullable=True),
        Column("jitter", DOUBLE_PRECISION, nullable=False, server_default=text("0")),
        Column("enabled", Boolean, nullable=False, server_default=text("true")),
        _moment("expires_at"),
        Column("misfire", Text, nullable=False, server_default=text("'run_once'::text")),
        Column("misfire_grace", DOUBLE_PRECISION, nullable=False, server_default=text("60")),
        Column("description", Text, nullable=True),
        _moment("next_run_at"),
        _moment("last_run_at"),
        Column("total_runs", BigInteger, nullable=False, server_default=text("0")),
        _moment("last_success_at"),
        Column("last_error", Text, nullable=True),
        _moment("last_error_at"),
        Column("drift", DOUBLE_PRECISION, nullable=True),
        Column("version", Integer, nullable=False, server_default=text("1")),
        _moment("created_at", nullable=False, now=True),
        _moment("updated_at", nullable=False, now=True),
        # Where the entry comes from (migration 0014): 'code' for @app.periodic, synced by beat.
        Column("origin", Text, nullable=False, server_default=text("'store'::text")),
        CheckConstraint("misfire IN ('run_once', 'skip')", name="schedules_misfire_check"),
        CheckConstraint("origin IN ('store', 'code')", name="schedules_origin_check"),
    )
    Index("schedules_due_idx", schedules.c.next_run_at, postgresql_where=text("enabled"))
    return schedules


def _schedule_fires(metadata: MetaData) -> Table:
    """One row per (schedule, fire time): the unique key behind "fires at most once"."""
    fires = Table(
        "schedule_fires",
        metadata,
        Column("schedule", Text, nullable=False),
        _moment("fire_time", nullable=False),
        Column("task_id", Text, nullable=False),
        _moment("fired_at", nullable=False, now=True),
        Column("beat_id", Text, nullable=True),
        Column("fence", BigInteger, nullable=True),
        PrimaryKeyConstraint("schedule", "fire_time", name="schedule_fires_pkey"),
    )
    Index("schedule_fires_fired_idx", fires.c.fired_at)
    return fires


def _locks(metadata: MetaData) -> Table:
    """The lock store: owner-checked, expiring leases with fencing tokens from ``lock_tokens``."""
    Sequence("lock_tokens", metadata=metadata)
    return Table(
        "locks",
        metadata,
        Column("key", Text, primary_key=True),
        Column("owner", Text, nullable=False),
        Column("token", BigInteger, nullable=False),
        _moment("acquired_at", nullable=False, now=True),
        _moment("expires_at", nullable=False),
    )
