"""The plain claim as one statement that plans itself: ``claim_ready``.

Revision ID: 0021
Revises: 0020

``job_claim`` must walk ``jobs_claim_idx`` in its order whatever the statistics say, so it
is planned with sorts off. A worker's own claim connection (``--connections per-loop``)
turns them off for its session; a connection that other statements share (``minimal``:
flushes, leases, maintenance and control run on it too) or a transaction pooler's cannot,
so there each claim was a transaction of its own: BEGIN, ``SET LOCAL enable_sort = off``,
the claim, COMMIT. Pipelined, that is one round trip, but four messages that the server
and the event loop each take in turn: about 1 ms more than the single statement on an
idle worker (bench/RESULTS.md, "Wake-up latency").

``claim_ready`` is ``job_claim`` inside a function that carries its own planner setting
(``SET enable_sort = off``): one statement on any connection, planned by PL/pgSQL once per
session. It returns ``job_claim``'s rows, and like it, keeps ``synchronous_commit`` on for
its transaction (the claim is a durable commit). ``job_claim`` stays, so workers of the
previous release run against this schema during a deploy.
"""

from __future__ import annotations

from stem_pg.schema.migration_ops import run_sql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION {ns}.claim_ready(p_queue text, p_limit integer, p_worker text, p_token uuid,
                                 p_lease double precision, p_tasks text[] DEFAULT NULL)
RETURNS TABLE (id text, task text, queue text, priority smallint, args jsonb, headers jsonb,
               attempts integer, max_retries integer, expires_at timestamptz,
               visibility_timeout integer, acks_late boolean, signature text,
               waited double precision, args_size integer)
LANGUAGE plpgsql
-- The walk of jobs_claim_idx is the only plan (job_claim_planner), and a plan is never
-- JIT-compiled for the cost that sorts off add to the others.
SET enable_sort = off
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    -- A durable commit, even where the session's default is not (job_claim's "durable").
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    RETURN QUERY
    WITH picked AS MATERIALIZED (
        SELECT j.id
        FROM {ns}.jobs AS j
        WHERE j.queue = p_queue
          AND j.state IN ('queued', 'retried')
          AND (p_tasks IS NULL OR j.task = ANY(p_tasks))
          AND j.not_before <= now()
          AND NOT EXISTS (SELECT 1 FROM {ns}.paused_queues AS p WHERE p.queue = p_queue)
        ORDER BY j.priority DESC, j.not_before, j.seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {ns}.jobs AS j
    SET state = 'running',
        attempts = j.attempts + 1,
        started_at = now(),
        worker_id = p_worker,
        lease_token = p_token,
        lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, p_lease))
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.task, j.queue, j.priority,
              CASE WHEN pg_column_size(j.args) <= 8 AND j.args = '{{}}'::jsonb THEN NULL
                   ELSE j.args END,
              nullif(j.headers - 'stem-signature', '{{}}'::jsonb),
              j.attempts, j.max_retries, j.expires_at, j.visibility_timeout, j.acks_late,
              j.headers ->> 'stem-signature',
              extract(epoch FROM now() - greatest(j.enqueued_at, j.not_before))::float8,
              pg_column_size(j.args);
END;
$$;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql("DROP FUNCTION {ns}.claim_ready(text, integer, text, uuid, double precision, text[]);")
