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
-- result waiters see the new run; a failed workflow run is running again; a canvas
-- member's chain, group or chord is running again) and mark them replayed. Returns the
-- task ids.
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
),
-- A failed canvas member is pending again; its canvas counts it as unfinished and
-- not failed, and runs again. The members its failure cancelled (later chain links, a
-- chord's callback: never enqueued) wait again too, so the jobs_done trigger enqueues
-- them as before. A canvas that another failed member still holds fails again once the
-- replayed member is done.
revived AS (
    UPDATE {ns}.canvas_members AS m
    SET state = 'pending', result = NULL, error = NULL, finished_at = NULL
    FROM picked
    WHERE m.task_id = picked.task_id AND m.state IN ('failed', 'cancelled')
    RETURNING m.canvas_id, m.position
),
revived_counts AS (
    SELECT r.canvas_id, count(*) AS members, count(*) FILTER (WHERE r.position < c.size) AS counted
    FROM revived AS r
    JOIN {ns}.canvases AS c ON c.id = r.canvas_id
    GROUP BY r.canvas_id
),
reopened AS (
    UPDATE {ns}.canvases AS c
    SET state = 'running', error = NULL, finished_at = NULL,
        pending = c.pending + k.counted, failed = greatest(c.failed - k.members, 0)
    FROM revived_counts AS k
    WHERE c.id = k.canvas_id
),
uncancelled AS (
    UPDATE {ns}.canvas_members AS m
    SET state = 'pending', error = NULL, finished_at = NULL
    FROM revived_counts AS k
    WHERE m.canvas_id = k.canvas_id AND m.state = 'cancelled' AND m.enqueued_at IS NULL
    RETURNING m.task_id
),
uncancelled_results AS (
    DELETE FROM {ns}.results AS r USING uncancelled AS u WHERE r.id = u.task_id
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
