-- claim.sql in two transactions, as stem_pg's worker runs them: the claim commits, then
-- the finish commits (two commits per batch where claim.sql has one). The same SQL
-- otherwise; claim.sql says what it mirrors of sql/jobs.sql and what it leaves out.
-- Variables (pgbench -D): batch, queue, tasks; PGOPTIONS as for claim.sql.
-- The claim's lease token, one per claim as the worker's: from the client and a random number.
\set claim random(1, 1000000000000)
WITH picked AS MATERIALIZED (
    SELECT id
    FROM jobs
    WHERE queue = :queue
      AND state IN ('queued', 'retried')
      AND (:tasks::text[] IS NULL OR task = ANY(:tasks::text[]))
      AND not_before <= now()
      AND NOT EXISTS (SELECT 1 FROM paused_queues AS p WHERE p.queue = :queue)
    ORDER BY priority DESC, not_before, seq
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE jobs AS j
    SET state = 'running',
        attempts = j.attempts + 1,
        started_at = now(),
        worker_id = 'pgbench',
        lease_token = md5(:client_id::text || '-' || :claim::text)::uuid,
        lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, 300))
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id
)
SELECT coalesce(array_agg(id), '{}') AS ids FROM claimed \gset
WITH done AS (
    DELETE FROM jobs AS j
    WHERE j.id = ANY(:ids::text[]) AND j.lease_token = md5(:client_id::text || '-' || :claim::text)::uuid
    RETURNING j.*
)
INSERT INTO results (id, task, queue, priority, state, result, error, traceback,
                     attempts, enqueued_at, started_at, finished_at, worker_id, expires_at)
SELECT id, task, queue, priority, 'succeeded', 'null'::jsonb, NULL, NULL,
       attempts, enqueued_at, started_at, now(), worker_id, now() + make_interval(secs => 86400)
FROM done
ON CONFLICT (id) DO UPDATE
SET task = excluded.task, queue = excluded.queue, priority = excluded.priority,
    state = excluded.state, result = excluded.result, error = excluded.error,
    traceback = excluded.traceback, attempts = excluded.attempts,
    enqueued_at = excluded.enqueued_at, started_at = excluded.started_at,
    finished_at = excluded.finished_at, worker_id = excluded.worker_id,
    expires_at = excluded.expires_at;
