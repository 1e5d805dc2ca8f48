-- What the web dashboard reads. {ns} is the namespace schema. Every query is a primary-key
-- lookup, a range scan of an index, or reads a view built on them (queue_health reads the
-- live jobs and the last 15 minutes of results); lists are paged by keyset, never OFFSET.

-- name: dash_namespaces
-- The migrated namespaces this role may read: schemas with a jobs table it can SELECT.
SELECT n.nspname AS name
FROM pg_namespace AS n
JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = 'jobs' AND c.relkind = 'r'
JOIN pg_class AS v ON v.relnamespace = n.oid AND v.relname = 'alembic_version'
WHERE has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname;

-- name: dash_queues
-- Each queue's health (queue_health) with its pause, if any, by queue name.
SELECT coalesce(h.queue, p.queue) AS queue,
       coalesce(h.ready, 0) AS ready, coalesce(h.scheduled, 0) AS scheduled,
       coalesce(h.running, 0) AS running, h.oldest_ready_age,
       coalesce(h.finished_15m, 0) AS finished_15m, coalesce(h.failed_15m, 0) AS failed_15m,
       h.failure_rate_15m, h.wait_p95_5m, h.run_p95_5m,
       p.paused_at, p.paused_by, p.reason AS paused_reason
FROM {ns}.queue_health AS h
FULL JOIN {ns}.paused_queues AS p ON p.queue = h.queue
ORDER BY 1;

-- name: dash_queue_buckets
-- One queue's live jobs by priority bucket, highest first.
SELECT priority, ready, scheduled, running
FROM {ns}.queue_depths
WHERE queue = %(queue)s
ORDER BY priority DESC;

-- name: dash_overview_queues
-- What the overview shows of each queue: its live jobs (as queue_health counts them), the jobs
-- it finished (and failed) in the last 15 minutes, its pause. No latency percentiles (the queue
-- page reads those from queue_health): one pass over the live jobs and a range scan of
-- results_finished_idx that only counts.
WITH live AS (
    SELECT queue,
           count(*) FILTER (WHERE state <> 'running' AND not_before <= now()) AS ready,
           count(*) FILTER (WHERE state <> 'running' AND not_before > now()) AS scheduled,
           count(*) FILTER (WHERE state = 'running') AS running,
           min(not_before) FILTER (WHERE state <> 'running' AND not_before <= now()) AS oldest_ready
    FROM {ns}.jobs
    GROUP BY queue
), recent AS (
    SELECT queue, count(*) AS finished_15m, count(*) FILTER (WHERE state = 'failed') AS failed_15m
    FROM {ns}.results
    WHERE finished_at > now() - interval '15 minutes'
    GROUP BY queue
)
SELECT queue,
       coalesce(live.ready, 0) AS ready, coalesce(live.scheduled, 0) AS scheduled,
       coalesce(live.running, 0) AS running,
       extract(epoch FROM now() - live.oldest_ready)::double precision AS oldest_ready_age,
       coalesce(recent.finished_15m, 0) AS finished_15m,
       coalesce(recent.failed_15m, 0) AS failed_15m,
       p.paused_at
FROM live
FULL JOIN recent USING (queue)
FULL JOIN {ns}.paused_queues AS p USING (queue)
ORDER BY 1;

-- name: dash_minutes
-- Jobs finished per minute over the last hour, per queue: how many, how many failed, the
-- mean wait (enqueued -> started) in seconds. The minutes the workers' maintenance rolled up
-- (before result_rollup.rolled_to, sql/rollup.sql) come from result_minutes, one row per
-- minute and queue; the rest (the current minute, the one that ended less than 10 s ago, or
-- the whole hour when no worker rolls up) from a range scan of results_finished_idx. Its
-- cost follows the minutes and queues, not the jobs finished.
WITH bounds AS MATERIALIZED (
    SELECT date_bin('1 minute', now(), timestamptz '2000-01-01 00:00+00') - interval '59 minutes' AS since,
           w.rolled_to
    FROM {ns}.result_rollup AS w
)
SELECT m.queue, m.minute, m.finished, m.failed, m.wait_seconds_sum / nullif(m.waited, 0) AS wait
FROM {ns}.result_minutes AS m
WHERE m.minute >= (SELECT since FROM bounds) AND m.minute < (SELECT rolled_to FROM bounds)
UNION ALL
SELECT r.queue, date_bin('1 minute', r.finished_at, timestamptz '2000-01-01 00:00+00') AS minute,
       count(*) AS finished, count(*) FILTER (WHERE r.state = 'failed') AS failed,
       extract(epoch FROM avg(r.started_at - r.enqueued_at))::double precision AS wait
FROM {ns}.results AS r
WHERE r.finished_at >= (SELECT greatest(since, rolled_to) FROM bounds)
GROUP BY 1, 2
ORDER BY 2, 1;

-- name: dash_recent_failures
-- The latest failed jobs of the last day, newest first.
SELECT id, task, queue, error, attempts, finished_at
FROM {ns}.results
WHERE finished_at > now() - interval '1 day' AND state = 'failed'
ORDER BY finished_at DESC
LIMIT %(limit)s;

-- name: dash_jobs_page
-- One page of jobs, live and finished, newest enqueue first, strictly before the page key
-- (before_at, before_id). The waiting and the finished halves are backward scans of
-- jobs_enqueued_idx (waiting jobs only, migration 0018) and results_enqueued_idx that stop
-- after `limit` matches; the running jobs (at most the fleet's concurrency) come from
-- jobs_lease_idx. with_live/with_finished switch halves off when the state filter cannot
-- match them. NULL filters match everything.
WITH waiting AS (
    SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
           NULL::timestamptz AS finished_at, worker_id, errors -> -1 ->> 'error' AS error
    FROM {ns}.jobs
    WHERE %(with_live)s::bool AND state IN ('queued', 'retried')
      AND (enqueued_at, id) < (%(before_at)s::timestamptz, %(before_id)s::text)
      AND (%(since)s::timestamptz IS NULL OR enqueued_at >= %(since)s::timestamptz)
      AND (%(state)s::text IS NULL OR state = %(state)s::text)
      AND (%(task)s::text IS NULL OR task = %(task)s::text)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(search)s::text IS NULL OR id = %(search)s::text
           OR strpos(lower(task), lower(%(search)s::text)) > 0
           OR strpos(lower(errors::text), lower(%(search)s::text)) > 0)
    ORDER BY enqueued_at DESC, id DESC
    LIMIT %(limit)s
),
running AS (
    SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
           NULL::timestamptz AS finished_at, worker_id, errors -> -1 ->> 'error' AS error
    FROM {ns}.jobs
    WHERE %(with_live)s::bool AND state = 'running'
      AND (enqueued_at, id) < (%(before_at)s::timestamptz, %(before_id)s::text)
      AND (%(since)s::timestamptz IS NULL OR enqueued_at >= %(since)s::timestamptz)
      AND (%(state)s::text IS NULL OR state = %(state)s::text)
      AND (%(task)s::text IS NULL OR task = %(task)s::text)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(search)s::text IS NULL OR id = %(search)s::text
           OR strpos(lower(task), lower(%(search)s::text)) > 0
           OR strpos(lower(errors::text), lower(%(search)s::text)) > 0)
    ORDER BY enqueued_at DESC, id DESC
    LIMIT %(limit)s
),
finished AS (
    SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at, finished_at,
           worker_id, error
    FROM {ns}.results
    WHERE %(with_finished)s::bool
      AND (enqueued_at, id) < (%(before_at)s::timestamptz, %(before_id)s::text)
      AND (%(since)s::timestamptz IS NULL OR enqueued_at >= %(since)s::timestamptz)
      AND (%(state)s::text IS NULL OR state = %(state)s::text)
      AND (%(task)s::text IS NULL OR task = %(task)s::text)
      AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
      AND (%(search)s::text IS NULL OR id = %(search)s::text
           OR strpos(lower(task), lower(%(search)s::text)) > 0
           OR strpos(lower(coalesce(error, '')), lower(%(search)s::text)) > 0)
    ORDER BY enqueued_at DESC, id DESC
    LIMIT %(limit)s
)
SELECT * FROM (SELECT * FROM waiting UNION ALL SELECT * FROM running UNION ALL SELECT * FROM finished) AS page
ORDER BY enqueued_at DESC, id DESC
LIMIT %(limit)s;

-- name: dash_job_exact
-- The job whose id is exactly the search text, live or finished (two primary-key lookups):
-- a search for an id answers without scanning for substrings.
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at,
       NULL::timestamptz AS finished_at, worker_id, errors -> -1 ->> 'error' AS error
FROM {ns}.jobs
WHERE id = %(id)s
UNION ALL
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at, finished_at,
       worker_id, error
FROM {ns}.results
WHERE id = %(id)s;

-- name: dash_job_live
-- A waiting or running job by id, with everything it carries.
SELECT id, task, queue, priority, state, args, headers, attempts, max_retries, enqueued_at,
       not_before, started_at, lease_expires_at, worker_id, progress, errors
FROM {ns}.jobs
WHERE id = %(id)s;

-- name: dash_job_dead
-- The dead letters of one task id (a replayed job may have died more than once), newest first.
SELECT id, task_id, task, queue, priority, args, headers, max_retries, reason, error, errors,
       attempts, enqueued_at, dead_at, replayed_at
FROM {ns}.dead_letters
WHERE task_id = %(id)s
ORDER BY id DESC;

-- name: dash_job_canvas
-- The canvas a task belongs to, if any, with its kind and state.
SELECT m.canvas_id, m.position, c.kind, c.state
FROM {ns}.canvas_members AS m
JOIN {ns}.canvases AS c ON c.id = m.canvas_id
WHERE m.task_id = %(id)s;

-- name: dash_dead_letters
-- A page of dead letters not yet replayed, newest first, strictly before the id `before`.
SELECT id, task_id, task, queue, priority, reason, error, attempts, dead_at, replayed_at
FROM {ns}.dead_letters
WHERE id < %(before)s
  AND replayed_at IS NULL
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: dash_running
-- The running jobs, with what runs them since when (the in-flight tasks of each worker).
SELECT worker_id, id, task, queue, started_at,
       extract(epoch FROM now() - started_at)::double precision AS runtime
FROM {ns}.jobs
WHERE state = 'running'
ORDER BY started_at;

-- name: dash_worker_counts
-- Jobs each worker finished in the last hour, and how many of them failed.
SELECT worker_id, count(*) AS processed, count(*) FILTER (WHERE state = 'failed') AS failed
FROM {ns}.results
WHERE finished_at > now() - interval '1 hour' AND worker_id IS NOT NULL
GROUP BY worker_id;

-- name: dash_workflow_runs
-- A page of workflow runs in one status, newest first, strictly before (before_at, before_id).
SELECT id, workflow, status, waiting_for, wake_at, resumes, error, created_at, updated_at,
       finished_at
FROM {ns}.wf_runs
WHERE status = %(status)s
  AND (created_at, id) < (%(before_at)s::timestamptz, %(before_id)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: dash_workflow_run
-- One workflow run by id.
SELECT id, workflow, status, params, result, error, parent_run_id, waiting_for, wake_at,
       deadline_at, job_id, resumes, created_at, updated_at, finished_at
FROM {ns}.wf_runs
WHERE id = %(id)s;

-- name: dash_workflow_steps
-- The checkpoints of one run in the order they were reached (the steps timeline).
SELECT seq, step, kind, output, error, job_id, attempt, finished_at
FROM {ns}.wf_steps
WHERE run_id = %(id)s
ORDER BY seq;

-- name: dash_canvases
-- A page of canvases, newest first, strictly before (before_at, before_id).
SELECT id, kind, size, pending, failed, state, error, created_at, finished_at
FROM {ns}.canvases
WHERE (created_at, id) < (%(before_at)s::timestamptz, %(before_id)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: dash_canvas_members
-- The members of one canvas in their order.
SELECT position, task_id, task, state, error, enqueued_at, finished_at
FROM {ns}.canvas_members
WHERE canvas_id = %(id)s
ORDER BY position;

-- name: dash_broadcasts
-- A page of broadcast messages, newest first, strictly before the id `before`, with how
-- their deliveries stand (one primary-key range per message).
SELECT m.id, m.task_id, m.channel, m.task, m.delivery, m.published_at,
       f.deliveries, f.delivered, f.failed
FROM (
    SELECT id, task_id, channel, task, delivery, published_at
    FROM {ns}.broadcast_messages
    WHERE id < %(before)s
    ORDER BY id DESC
    LIMIT %(limit)s
) AS m
CROSS JOIN LATERAL (
    SELECT count(*) AS deliveries,
           count(*) FILTER (WHERE state IN ('delivered', 'succeeded')) AS delivered,
           count(*) FILTER (WHERE state = 'failed') AS failed
    FROM {ns}.broadcast_fanout
    WHERE message_id = m.id
) AS f
ORDER BY m.id DESC;

-- name: dash_broadcast_deliveries
-- The deliveries of one broadcast message, by worker.
SELECT worker_id, state, attempts, started_at, finished_at, error
FROM {ns}.broadcast_deliveries
WHERE message_id = %(id)s
ORDER BY worker_id;
