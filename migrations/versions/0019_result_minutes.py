"""A per-minute rollup of finished jobs, so the dashboard's chart does not read every result.

Revision ID: 0019
Revises: 0018

The overview's chart (jobs finished per minute over the last hour, per queue) read and
grouped every result of that hour: ~6 us a row, tens of seconds at 1,160 results a second
(bench/RESULTS.md, "results at scale"). ``result_minutes`` holds one row per complete
minute and queue: how many finished, how many failed, and the sum and count of their waits
(enqueued -> started; a result that never started has no wait). The workers' maintenance
fills it from ``results`` (sql/rollup.sql), up to ``result_rollup.rolled_to``, the one-row
watermark (NULL: nothing rolled up yet, the first pass starts an hour back), and prunes it
after a day.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE {ns}.result_minutes (
    minute timestamptz NOT NULL,
    queue text NOT NULL,
    finished bigint NOT NULL,
    failed bigint NOT NULL,
    waited bigint NOT NULL,
    wait_seconds_sum double precision NOT NULL,
    PRIMARY KEY (minute, queue)
);
CREATE TABLE {ns}.result_rollup (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    rolled_to timestamptz
);
INSERT INTO {ns}.result_rollup (one, rolled_to) VALUES (true, NULL);
"""

DOWNGRADE = """
DROP TABLE {ns}.result_rollup;
DROP TABLE {ns}.result_minutes;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
