"""Index jobs and results by enqueue time, so the dashboard's jobs page pages by keyset.

Revision ID: 0012
Revises: 0011

The dashboard lists live and finished jobs newest first, ``(enqueued_at, id)`` being
the page key: each page reads the next N entries of these two indexes instead of
sorting a million rows (and never uses ``OFFSET``). A time-range filter on the
enqueue time is a range scan of the same indexes. Cost: one more index entry per
enqueue and per finished job.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE INDEX jobs_enqueued_idx ON {ns}.jobs (enqueued_at, id);
CREATE INDEX results_enqueued_idx ON {ns}.results (enqueued_at, id);
"""

DOWNGRADE = """
DROP INDEX {ns}.results_enqueued_idx;
DROP INDEX {ns}.jobs_enqueued_idx;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
