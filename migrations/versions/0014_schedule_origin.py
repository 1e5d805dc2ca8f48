"""Where a schedule entry comes from: ``schedules.origin``.

Revision ID: 0014
Revises: 0013

``store`` (the default, every entry so far): made by ``stem schedule apply``, the CLI or
``app.schedules``. ``code``: declared with ``@app.periodic`` and synced by beat at start-up,
which creates, updates and deletes only those; a file entry of the same name with another
definition is refused on either side (stem_pg.client.schedules).
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE {ns}.schedules ADD COLUMN origin text NOT NULL DEFAULT 'store'
    CONSTRAINT schedules_origin_check CHECK (origin IN ('store', 'code'));
"""

DOWNGRADE = """
ALTER TABLE {ns}.schedules DROP COLUMN origin;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
