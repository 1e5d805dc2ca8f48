"""Dead letters may say ``signature_invalid``: a job whose payload signature did not verify.

Revision ID: 0008
Revises: 0007

Under payload signing (STEM_SIGNING_KEYS), a worker dead-letters an unsigned or
badly signed job instead of running it. The signature itself lives in the
job's headers (``stem-signature``), so no column changes: only the reason
check learns the new value.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE {ns}.dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE {ns}.dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN
    ('max_retries_exceeded', 'unregistered_task', 'rejected', 'lease_expired', 'signature_invalid'));
"""

# A signature_invalid dead letter cannot be described by the old check: it becomes 'rejected'.
DOWNGRADE = """
UPDATE {ns}.dead_letters SET reason = 'rejected' WHERE reason = 'signature_invalid';
ALTER TABLE {ns}.dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE {ns}.dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN
    ('max_retries_exceeded', 'unregistered_task', 'rejected', 'lease_expired'));
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
