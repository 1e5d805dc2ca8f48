"""Dead letters may say ``bad_arguments``; ``task_states`` shows a running task's progress;
workers record their tasks' options.

Revision ID: 0009
Revises: 0008

A job whose arguments do not fit its handler's signature is dead-lettered at once
(``bad_arguments``: retrying cannot help), so the reason check learns the value.
The ``task_states`` view gains a last column, ``progress`` (what ``ctx.progress()``
reported last; NULL once the task finished), for plain-SQL readers. ``workers.tasks``
holds each registered task's enqueue options (queue, priority, max_retries, ...) as
the worker's application resolves them, so ``stem tasks enqueue`` without ``--app``
applies them (NULL: a worker from before this revision).
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

REASONS = "'max_retries_exceeded', 'unregistered_task', 'rejected', 'lease_expired', 'signature_invalid'"

# CREATE OR REPLACE keeps the view's grants (stem roles); a new column may only come last.
UPGRADE = f"""
ALTER TABLE {{ns}}.dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE {{ns}}.dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN
    ({REASONS}, 'bad_arguments'));

ALTER TABLE {{ns}}.workers ADD COLUMN tasks jsonb;

CREATE OR REPLACE VIEW {{ns}}.task_states AS
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       NULL::timestamptz AS finished_at, worker_id,
       errors -> -1 ->> 'error' AS error, not_before, progress
FROM {{ns}}.jobs
UNION ALL
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       finished_at, worker_id, error, NULL::timestamptz AS not_before, NULL::jsonb AS progress
FROM {{ns}}.results;
"""

# A bad_arguments dead letter cannot be described by the old check: it becomes 'rejected'.
# A view loses a column only by being dropped, and its grants with it: run `stem roles`
# again after this downgrade if you use the namespace's roles.
DOWNGRADE = f"""
UPDATE {{ns}}.dead_letters SET reason = 'rejected' WHERE reason = 'bad_arguments';
ALTER TABLE {{ns}}.dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE {{ns}}.dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN ({REASONS}));

ALTER TABLE {{ns}}.workers DROP COLUMN tasks;

DROP VIEW {{ns}}.task_states;
CREATE VIEW {{ns}}.task_states AS
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       NULL::timestamptz AS finished_at, worker_id,
       errors -> -1 ->> 'error' AS error, not_before
FROM {{ns}}.jobs
UNION ALL
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       finished_at, worker_id, error, NULL::timestamptz AS not_before
FROM {{ns}}.results;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
