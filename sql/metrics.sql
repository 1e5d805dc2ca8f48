-- The namespace exporter (stem metrics serve): what one scrape reads, in one short transaction.

-- name: metrics_statement_timeout
-- Bound every statement of this scrape's transaction to %(timeout_ms)s milliseconds.
SELECT set_config('statement_timeout', %(timeout_ms)s, true);

-- name: metrics_queues
-- Each queue's ready, scheduled and running jobs and the age of its oldest ready job, as the
-- queue_health view counts them (one pass over jobs, not its 15-minute result history); idle
-- queues that alive workers consume or that are paused are listed too, with zeros.
WITH live AS (
    SELECT queue,
           count(*) FILTER (WHERE state <> 'running' AND not_before <= now()) AS ready,
           count(*) FILTER (WHERE state <> 'running' AND not_before > now()) AS scheduled,
           count(*) FILTER (WHERE state = 'running') AS running,
           min(not_before) FILTER (WHERE state <> 'running' AND not_before <= now()) AS oldest_ready
    FROM {ns}.jobs
    GROUP BY queue
),
known AS (
    SELECT unnest(queues) AS queue
    FROM {ns}.workers
    WHERE stopped_at IS NULL
      AND last_heartbeat_at > now() - make_interval(secs => %(stale_after)s)
    UNION
    SELECT queue FROM {ns}.paused_queues
)
SELECT queue,
       coalesce(live.ready, 0) AS ready,
       coalesce(live.scheduled, 0) AS scheduled,
       coalesce(live.running, 0) AS running,
       extract(epoch FROM now() - live.oldest_ready)::double precision AS oldest_ready_age,
       EXISTS (SELECT 1 FROM {ns}.paused_queues AS p WHERE p.queue = q.queue) AS paused
FROM (SELECT queue FROM live UNION SELECT queue FROM known) AS q
LEFT JOIN live USING (queue)
ORDER BY queue
LIMIT %(max_queues)s;

-- name: metrics_dead_letters
-- Dead letters not replayed, per queue (dead_letters_queue_idx).
SELECT queue AS key, count(*) AS count
FROM {ns}.dead_letters
WHERE replayed_at IS NULL
GROUP BY queue
ORDER BY queue
LIMIT %(max_queues)s;

-- name: metrics_workers
-- Running workers: alive (a heartbeat within stale_after seconds) and stale (none since), as
-- stem worker status decides; stopped ones are not counted.
SELECT count(*) FILTER (WHERE last_heartbeat_at > now() - make_interval(secs => %(stale_after)s)) AS alive,
       count(*) FILTER (WHERE last_heartbeat_at <= now() - make_interval(secs => %(stale_after)s)) AS stale
FROM {ns}.workers
WHERE stopped_at IS NULL;

-- name: metrics_schedules
-- Enabled, unexpired schedule entries, how many are overdue (next run in the past) and by how
-- long the most overdue one is (0 when none is: beat keeps up).
SELECT count(*) AS active,
       count(*) FILTER (WHERE next_run_at < now()) AS overdue,
       coalesce(extract(epoch FROM now() - min(next_run_at) FILTER (WHERE next_run_at < now())), 0)::double precision AS lag
FROM {ns}.schedules
WHERE enabled
  AND (expires_at IS NULL OR expires_at > now());

-- name: metrics_workflow_runs
-- Workflow runs by status (wf_runs_status_idx).
SELECT status AS key, count(*) AS count
FROM {ns}.wf_runs
GROUP BY status;

-- name: metrics_limits
-- Rate and concurrency limits as the limiter_state view reads them: each limit's own row
-- (key '') first, then the groups of keyed limits, at most %(max_limits)s rows in all.
SELECT kind, scope, key, tokens, concurrency, running::int AS running, ready::int AS ready
FROM {ns}.limiter_state
ORDER BY key <> '', scope, kind, key
LIMIT %(max_limits)s;
