"""Control commands are rows: the database's privileges decide who may command workers.

Revision ID: 0007
Revises: 0006

A NOTIFY needs no privilege and carries no identity, so workers no longer act on
a NOTIFY payload: a command is a row of ``control_commands`` (INSERT is what an
operator is granted), the NOTIFY only tells workers to look, and every reply is a
row of ``control_replies`` keyed by the command's ``request_id``. Workers read the
commands newer than their cursor, on a wake-up or on their control loop's poll.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
-- One row per control command; ``id`` is the workers' cursor (writers serialise
-- on an advisory lock, so ids commit in order). ``targets`` empty: every worker.
CREATE TABLE {ns}.control_commands (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id text NOT NULL CONSTRAINT control_commands_request_id_key UNIQUE,
    command text NOT NULL,
    args jsonb NOT NULL DEFAULT '{{}}',
    targets text[] NOT NULL DEFAULT '{{}}',
    wants_reply boolean NOT NULL DEFAULT true,
    issued_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX control_commands_created_idx ON {ns}.control_commands (created_at);
"""

DOWNGRADE = """
DROP TABLE {ns}.control_commands;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
