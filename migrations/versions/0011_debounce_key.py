"""Debounced enqueue: ``jobs.debounce_key``, unique per task among jobs not yet started.

Revision ID: 0011
Revises: 0010

``app.enqueue(name, kwargs, debounce="5s", key="user-42")`` replaces the job of the same
task and key that waits to start for the first time (state ``queued``): its arguments, and
its run time pushed to now + 5 s. ``jobs_debounce_idx`` holds only those jobs, so a claimed
job (``running``: it has started) leaves it and the next enqueue with the key makes a new
job; two producers that find no job at once insert one, the other's insert conflicts and
replaces it. A worker that hands back a claimed job it never started clears the key (the
job runs as it is; a later enqueue with the key makes a new one).
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE {ns}.jobs ADD COLUMN debounce_key text;
CREATE UNIQUE INDEX jobs_debounce_idx ON {ns}.jobs (task, debounce_key)
    WHERE debounce_key IS NOT NULL AND state = 'queued';
"""

DOWNGRADE = """
DROP INDEX {ns}.jobs_debounce_idx;
ALTER TABLE {ns}.jobs DROP COLUMN debounce_key;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
