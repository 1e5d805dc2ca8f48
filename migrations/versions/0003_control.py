"""Control plane: broadcast fan-out, revokes, paused queues, control replies.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per publish to a broadcast channel. The delivery mode and retry
-- budget are fixed at publish time, so every subscriber treats it alike.
CREATE TABLE {ns}.broadcast_messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    channel text NOT NULL,
    task text NOT NULL,
    args jsonb NOT NULL DEFAULT '{{}}',
    headers jsonb NOT NULL DEFAULT '{{}}',
    delivery text NOT NULL DEFAULT 'at-least-once'
        CONSTRAINT broadcast_messages_delivery_check
        CHECK (delivery IN ('at-least-once', 'at-most-once')),
    durable boolean NOT NULL DEFAULT false,
    max_retries integer NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    published_at timestamptz NOT NULL DEFAULT now()
);

-- A task id names one message (idempotent publish).
CREATE UNIQUE INDEX broadcast_messages_task_id_idx ON {ns}.broadcast_messages (task_id);
CREATE INDEX broadcast_messages_channel_idx ON {ns}.broadcast_messages (channel, id);

-- Which worker listens to which channel. A message fans out to the live ones.
CREATE TABLE {ns}.broadcast_subscriptions (
    channel text NOT NULL,
    worker_id text NOT NULL,
    subscribed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, worker_id)
);

CREATE INDEX broadcast_subscriptions_worker_idx ON {ns}.broadcast_subscriptions (worker_id);

-- The fan-out: one row per message and subscriber, from 'pending' to a terminal state.
-- 'running' (at-least-once) goes back to 'pending' if the worker dies before acking;
-- 'delivered' (at-most-once) was marked before the handler ran and never repeats.
CREATE TABLE {ns}.broadcast_fanout (
    message_id bigint NOT NULL REFERENCES {ns}.broadcast_messages (id) ON DELETE CASCADE,
    subscriber text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT broadcast_fanout_state_check CHECK (state IN
            ('pending', 'running', 'delivered', 'succeeded', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    result jsonb,
    error text,
    PRIMARY KEY (message_id, subscriber)
) WITH (autovacuum_vacuum_scale_factor = 0.02);

-- A subscriber's claim: only its pending rows, oldest message first.
CREATE INDEX broadcast_fanout_claim_idx ON {ns}.broadcast_fanout (subscriber, message_id)
    WHERE state = 'pending';
CREATE INDEX broadcast_fanout_subscriber_idx ON {ns}.broadcast_fanout (subscriber, state);

CREATE VIEW {ns}.broadcast_deliveries AS
SELECT m.id AS message_id, m.task_id, m.channel, m.task, m.delivery, f.subscriber AS worker_id,
       f.state, f.attempts, m.published_at, f.started_at, f.finished_at, f.error, f.result
FROM {ns}.broadcast_fanout AS f
JOIN {ns}.broadcast_messages AS m ON m.id = f.message_id;

-- Revokes: append-only, versioned by id (writers serialise on an advisory lock, so
-- versions commit in order and a worker can catch up with "version > last seen").
CREATE TABLE {ns}.revokes (
    version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    reason text,
    terminate boolean NOT NULL DEFAULT false,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX revokes_task_id_idx ON {ns}.revokes (task_id);
CREATE INDEX revokes_expires_idx ON {ns}.revokes (expires_at);

-- Paused queues: workers claim nothing from them until the row is gone.
CREATE TABLE {ns}.paused_queues (
    queue text PRIMARY KEY,
    paused_at timestamptz NOT NULL DEFAULT now(),
    paused_by text,
    reason text
);

-- Control replies too large for a NOTIFY payload (8000 bytes); pruned after minutes.
CREATE TABLE {ns}.control_replies (
    request_id text NOT NULL,
    worker_id text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, worker_id)
);

CREATE INDEX control_replies_created_idx ON {ns}.control_replies (created_at);
"""

DOWNGRADE = """
DROP TABLE {ns}.control_replies;
DROP TABLE {ns}.paused_queues;
DROP TABLE {ns}.revokes;
DROP VIEW {ns}.broadcast_deliveries;
DROP TABLE {ns}.broadcast_fanout;
DROP TABLE {ns}.broadcast_subscriptions;
DROP TABLE {ns}.broadcast_messages;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
