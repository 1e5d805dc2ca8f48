-- Operator actions on a whole queue (QueueStore): `stem purge`. {ns} is the namespace schema.

-- name: queue_waiting_count
-- How many jobs of a queue wait (ready or scheduled, not running): what a purge would cancel.
SELECT count(*)::int AS waiting
FROM {ns}.jobs
WHERE queue = %(queue)s AND state IN ('queued', 'retried');

-- name: queue_purge
-- Cancel a queue's waiting jobs (ready or scheduled) at once, as a revoke does: each leaves the
-- queue with a 'cancelled' result that tells its waiters. Running jobs, earlier results and
-- dead letters stay; a job a worker claims meanwhile is running by the time the DELETE sees
-- it, and stays. Returns how many were purged.
WITH purged AS (
    DELETE FROM {ns}.jobs
    WHERE queue = %(queue)s AND state IN ('queued', 'retried')
    RETURNING id, task, queue, priority, attempts, enqueued_at
),
stored AS (
    INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                              finished_at, expires_at)
    SELECT id, task, queue, priority, 'cancelled', %(error)s, attempts, enqueued_at, now(),
           now() + make_interval(secs => %(result_ttl)s)
    FROM purged
    ON CONFLICT (id) DO UPDATE
    SET task = excluded.task, queue = excluded.queue, priority = excluded.priority,
        state = excluded.state, result = NULL, error = excluded.error, traceback = NULL,
        attempts = excluded.attempts, enqueued_at = excluded.enqueued_at, started_at = NULL,
        finished_at = excluded.finished_at, worker_id = NULL, expires_at = excluded.expires_at
    RETURNING id
),
notified AS (
    SELECT pg_notify(%(done_channel)s,
                     CASE WHEN sum(octet_length(id) + 1) < 7900 THEN string_agg(id, ',') ELSE '*' END)
    FROM stored
    HAVING count(*) > 0
)
SELECT count(*)::int AS purged
FROM stored
LEFT JOIN notified ON true;
