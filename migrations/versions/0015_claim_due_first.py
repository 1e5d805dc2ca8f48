"""The claim index puts due jobs first: (queue, priority DESC, not_before, seq).

Revision ID: 0015
Revises: 0014

The claim took a queue's jobs in ``(priority DESC, seq)`` order and checked
``not_before <= now()`` on each row's heap tuple, so jobs scheduled for later
that were enqueued before the due ones were stepped over, one heap visit each,
by every claim (half of a 1M backlog an hour ahead: the due half drained at 0.4
of the steady rate). Inside a priority bucket the index now orders by the time a
job is due, then by ``seq``; the claim orders the same way and stops at its limit
before it reaches the bucket's not-yet-due rows. Inside a bucket, jobs now run in
the order they became due (FIFO for jobs enqueued to run at once, as before).

Workers of the previous release still claim correctly on this index (their
``ORDER BY priority DESC, seq`` sorts each bucket's due rows), more slowly: upgrade
workers soon after migrating.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = """
DROP INDEX {ns}.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON {ns}.jobs (queue, priority DESC, not_before, seq)
    WHERE state IN ('queued', 'retried');
"""

DOWNGRADE = """
DROP INDEX {ns}.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON {ns}.jobs (queue, priority DESC, seq)
    WHERE state IN ('queued', 'retried');
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
