"""Each worker process records how many connections it may hold.

Revision ID: 0020
Revises: 0019

``stem doctor`` compares what the running worker processes may open between them with the
server's ``max_connections``. Since workers hold two connections by default
(``--connections minimal``) and six with ``--connections per-loop``, a fleet can mix both:
each worker now writes its own count into ``workers.connections`` when it registers. A row
written by an older worker has none, and is counted at six, the most it held.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = "ALTER TABLE {ns}.workers ADD COLUMN connections smallint;"

DOWNGRADE = "ALTER TABLE {ns}.workers DROP COLUMN connections;"


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
