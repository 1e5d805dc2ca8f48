"""Let stem_pg's own connections send job wake-ups outside the inserting transaction.

Revision ID: 0005
Revises: 0004

A transaction that NOTIFYs holds a database-wide lock from its commit until
its WAL flush is done, so inserts that wake workers through the insert trigger
commit one at a time and concurrent single enqueues cannot share a WAL flush.
Connections that set ``stem.client_notifies = on`` (the pools of a ``Stem``
application) now insert without that lock; the application sends the wake-ups
right after the commit, many commits' worth in one NOTIFY transaction. Every
other writer (a caller's own transaction, plain SQL) is woken by the trigger as
before.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE OR REPLACE FUNCTION {ns}.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('stem.client_notifies', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE not_before <= now()) AS q;
    RETURN NULL;
END;
$$;
"""

DOWNGRADE = """
CREATE OR REPLACE FUNCTION {ns}.notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || ':jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE not_before <= now()) AS q;
    RETURN NULL;
END;
$$;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
