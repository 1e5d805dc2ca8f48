-- The dead-letter table: jobs that failed for good, kept for inspection and replay.
-- Filters: %(queue)s and %(since)s may be NULL (no filter).

-- name: dlq_list
-- Dead letters not yet replayed, newest first.
SELECT id, task_id, task, queue, priority, reason, error, attempts, dead_at, replayed_at
FROM {ns}.dead_letters
WHERE replayed_at IS NULL
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(since)s::timestamptz IS NULL OR dead_at >= %(since)s::timestamptz)
ORDER BY dead_at DESC, id DESC
LIMIT %(limit)s;

-- name: dlq_show
-- One dead letter by its id or its task id, with arguments and error history.
SELECT id, task_id, task, queue, priority, args, headers, max_retries, reason, error, errors,
       attempts, enqueued_at, dead_at, replayed_at
FROM {ns}.dead_letters
WHERE id::text = %(key)s OR task_id = %(key)s
ORDER BY dead_at DESC;

-- name: dlq_replay
-- Enqueue dead letters again under their task ids (their old result is removed, so
-- result waiters see the new run; a failed workflow run is running again) and mark
-- them replayed. Returns the task ids.
WITH picked AS (
    SELECT id, task_id, task, queue, priority, args, headers, max_retries
    FROM {ns}.dead_letters
    WHERE replayed_at IS NULL
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(since)s::timestamptz IS NULL OR dead_at >= %(since)s::timestamptz)
      AND (%(key)s::text IS NULL OR id::text = %(key)s::text OR task_id = %(key)s::text)
    ORDER BY dead_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
marked AS (
    UPDATE {ns}.dead_letters AS d SET replayed_at = now()
    FROM picked WHERE d.id = picked.id
),
cleared AS (
    DELETE FROM {ns}.results AS r USING picked WHERE r.id = picked.task_id
),
-- A failed workflow run whose job is replayed runs again from its last checkpoint.
resumed AS (
    UPDATE {ns}.wf_runs AS w
    SET status = 'running', error = NULL, finished_at = NULL, updated_at = now()
    FROM picked
    WHERE w.id = picked.headers ->> 'stem-workflow' AND w.job_id = picked.task_id
      AND w.status = 'failed'
)
INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries)
SELECT DISTINCT ON (task_id) task_id, task, queue, priority, args, headers, max_retries
FROM picked
ORDER BY task_id, id DESC
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: dlq_purge
-- Delete dead letters (replayed or not) matching the filters. Returns how many.
DELETE FROM {ns}.dead_letters
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(since)s::timestamptz IS NULL OR dead_at >= %(since)s::timestamptz);
