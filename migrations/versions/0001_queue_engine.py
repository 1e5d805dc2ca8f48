"""Queue engine: jobs, results, dead letters, workers, and the plain-SQL views.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
-- Live jobs only: queued, running, or waiting to be retried. Terminal jobs
-- move to results, so this table stays narrow and hot.
CREATE TABLE {ns}.jobs (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL DEFAULT 0,
    state text NOT NULL DEFAULT 'queued'
        CONSTRAINT jobs_state_check CHECK (state IN ('queued', 'running', 'retried')),
    args jsonb NOT NULL DEFAULT '{{}}',
    headers jsonb NOT NULL DEFAULT '{{}}',
    attempts integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    visibility_timeout integer,
    acks_late boolean NOT NULL DEFAULT true,
    not_before timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    lease_token uuid,
    lease_expires_at timestamptz,
    worker_id text,
    progress jsonb,
    errors jsonb NOT NULL DEFAULT '[]'
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);

-- The claim index: only claimable rows, highest priority first, FIFO inside a bucket.
CREATE INDEX jobs_claim_idx ON {ns}.jobs (queue, priority DESC, seq)
    WHERE state IN ('queued', 'retried');

-- The rescuer's index: running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON {ns}.jobs (lease_expires_at) WHERE state = 'running';

CREATE TABLE {ns}.results (
    id text PRIMARY KEY,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL,
    state text NOT NULL
        CONSTRAINT results_state_check CHECK (state IN ('succeeded', 'failed', 'cancelled')),
    result jsonb,
    error text,
    traceback text,
    attempts integer NOT NULL,
    enqueued_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz NOT NULL DEFAULT now(),
    worker_id text,
    expires_at timestamptz
) WITH (autovacuum_vacuum_scale_factor = 0.02);

CREATE INDEX results_finished_idx ON {ns}.results (finished_at);
CREATE INDEX results_expires_idx ON {ns}.results (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE {ns}.dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    task text NOT NULL,
    queue text NOT NULL,
    priority smallint NOT NULL,
    args jsonb NOT NULL,
    headers jsonb NOT NULL,
    max_retries integer NOT NULL,
    reason text NOT NULL
        CONSTRAINT dead_letters_reason_check CHECK (reason IN
            ('max_retries_exceeded', 'unregistered_task', 'rejected', 'lease_expired')),
    error text,
    errors jsonb NOT NULL DEFAULT '[]',
    attempts integer NOT NULL,
    enqueued_at timestamptz NOT NULL,
    dead_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);

CREATE INDEX dead_letters_queue_idx ON {ns}.dead_letters (queue, dead_at);
CREATE INDEX dead_letters_task_id_idx ON {ns}.dead_letters (task_id);

CREATE TABLE {ns}.workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz
);

-- One wake-up per queue per statement (and Postgres folds repeats within a
-- transaction), whoever inserts: the client, enqueue_many, or plain SQL.
CREATE FUNCTION {ns}.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE not_before <= now()) AS q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON {ns}.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION {ns}.notify_jobs();

CREATE VIEW {ns}.task_states AS
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       NULL::timestamptz AS finished_at, worker_id,
       errors -> -1 ->> 'error' AS error, not_before
FROM {ns}.jobs
UNION ALL
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       finished_at, worker_id, error, NULL::timestamptz AS not_before
FROM {ns}.results;

CREATE VIEW {ns}.queue_depths AS
SELECT queue, priority,
       count(*) FILTER (WHERE state <> 'running' AND not_before <= now()) AS ready,
       count(*) FILTER (WHERE state <> 'running' AND not_before > now()) AS scheduled,
       count(*) FILTER (WHERE state = 'running') AS running
FROM {ns}.jobs
GROUP BY queue, priority;
"""

DOWNGRADE = """
DROP VIEW {ns}.queue_depths;
DROP VIEW {ns}.task_states;
DROP TABLE {ns}.workers;
DROP TABLE {ns}.dead_letters;
DROP TABLE {ns}.results;
DROP TABLE {ns}.jobs;
DROP FUNCTION {ns}.notify_jobs();
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
