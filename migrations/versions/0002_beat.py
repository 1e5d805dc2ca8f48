"""Beat: schedules and their fires, the lock store, unique task keys on jobs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per schedule entry. `version` is the definition's optimistic lock:
-- every edit bumps it and must name the version it read; beat's own bookkeeping
-- (next_run_at, last_run_at, total_runs, ...) never does.
CREATE TABLE {ns}.schedules (
    name text PRIMARY KEY,
    task text NOT NULL,
    spec jsonb NOT NULL,
    kwargs jsonb NOT NULL DEFAULT '{{}}',
    queue text,
    priority smallint,
    jitter double precision NOT NULL DEFAULT 0,
    enabled boolean NOT NULL DEFAULT true,
    expires_at timestamptz,
    misfire text NOT NULL DEFAULT 'run_once'
        CONSTRAINT schedules_misfire_check CHECK (misfire IN ('run_once', 'skip')),
    misfire_grace double precision NOT NULL DEFAULT 60,
    description text,
    next_run_at timestamptz,
    last_run_at timestamptz,
    total_runs bigint NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    drift double precision,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Beat's due scan: enabled entries by next fire time.
CREATE INDEX schedules_due_idx ON {ns}.schedules (next_run_at) WHERE enabled;

-- The at-most-once guarantee: a (schedule, fire time) pair is recorded once, in
-- the same statement that enqueues its job, so a second fire is a no-op.
CREATE TABLE {ns}.schedule_fires (
    schedule text NOT NULL,
    fire_time timestamptz NOT NULL,
    task_id text NOT NULL,
    fired_at timestamptz NOT NULL DEFAULT now(),
    beat_id text,
    fence bigint,
    PRIMARY KEY (schedule, fire_time)
);

CREATE INDEX schedule_fires_fired_idx ON {ns}.schedule_fires (fired_at);

-- Fencing tokens: every acquisition of a lock takes a larger one.
CREATE SEQUENCE {ns}.lock_tokens;

CREATE TABLE {ns}.locks (
    key text PRIMARY KEY,
    owner text NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

-- Unique tasks: a key is held while its job is live (queued, running, retried);
-- finishing moves the row to results and frees the key. unique_until bounds
-- how long a key may block (unique_for); an expired key is released by the
-- next enqueue of the same key.
ALTER TABLE {ns}.jobs ADD COLUMN unique_key text, ADD COLUMN unique_until timestamptz;

CREATE UNIQUE INDEX jobs_unique_idx ON {ns}.jobs (unique_key) WHERE unique_key IS NOT NULL;

-- Edits (not beat's bookkeeping) wake running beats, whoever makes them.
CREATE FUNCTION {ns}.notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':schedules', TG_OP);
    RETURN NULL;
END;
$$;

CREATE TRIGGER schedules_notify
    AFTER INSERT OR DELETE OR UPDATE OF task, spec, kwargs, queue, priority, jitter, enabled,
        expires_at, misfire, misfire_grace, version
    ON {ns}.schedules
    FOR EACH STATEMENT EXECUTE FUNCTION {ns}.notify_schedules();
"""

DOWNGRADE = """
DROP TRIGGER schedules_notify ON {ns}.schedules;
DROP FUNCTION {ns}.notify_schedules();
DROP INDEX {ns}.jobs_unique_idx;
ALTER TABLE {ns}.jobs DROP COLUMN unique_until, DROP COLUMN unique_key;
DROP TABLE {ns}.locks;
DROP SEQUENCE {ns}.lock_tokens;
DROP TABLE {ns}.schedule_fires;
DROP TABLE {ns}.schedules;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
