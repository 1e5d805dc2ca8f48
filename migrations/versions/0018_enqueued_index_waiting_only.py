"""The dashboard's index of live jobs by enqueue time holds waiting jobs only.

Revision ID: 0018
Revises: 0017

``jobs_enqueued_idx`` (0012) indexed every row of ``jobs``. A claim changes a row's
``state`` and lease columns, which other indexes cover, so its UPDATE is never a HOT
update: every index of ``jobs`` gets an entry for the new row version, and this one
got one per job claimed, besides the one per job enqueued (measured: the two
enqueue-time indexes of 0012 took 10-20 % off a no-op drain; bench/RESULTS.md,
"What the dashboard's indexes cost the drain"). Now it covers the waiting jobs
(``queued``, ``retried``), which a claim moves out of it; the dashboard lists the running
jobs, never more than the fleet's concurrency, from ``jobs_lease_idx`` (``state =
'running'``).
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = """
DROP INDEX {ns}.jobs_enqueued_idx;
CREATE INDEX jobs_enqueued_idx ON {ns}.jobs (enqueued_at, id) WHERE state IN ('queued', 'retried');
"""

DOWNGRADE = """
DROP INDEX {ns}.jobs_enqueued_idx;
CREATE INDEX jobs_enqueued_idx ON {ns}.jobs (enqueued_at, id);
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
