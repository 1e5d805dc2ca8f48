-- stem observe: one reading per view (queues, workers, dead letters, schedules). Durations
-- and ages are in seconds (double precision), measured by the database's clock.

-- name: observe_queues
-- Every queue the queue_health view lists, with all its columns.
SELECT queue, ready, scheduled, running, oldest_ready_age,
       wait_p50_1m, wait_p95_1m, wait_p50_5m, wait_p95_5m, wait_p50_15m, wait_p95_15m,
       run_p50_1m, run_p95_1m, run_p50_5m, run_p95_5m, run_p50_15m, run_p95_15m,
       finished_1m, finished_5m, finished_15m, failed_15m, failure_rate_15m
FROM {ns}.queue_health
ORDER BY queue;

-- name: observe_workers
-- Every known worker: liveness as stem worker status judges it, uptime and heartbeat age.
SELECT id, host, pid, queues, concurrency,
       CASE
           WHEN stopped_at IS NOT NULL THEN 'gone'
           WHEN last_heartbeat_at > now() - make_interval(secs => %(stale_after)s) THEN 'alive'
           ELSE 'stale'
       END AS status,
       extract(epoch FROM coalesce(stopped_at, now()) - started_at)::double precision AS uptime,
       extract(epoch FROM now() - last_heartbeat_at)::double precision AS heartbeat_age
FROM {ns}.workers
ORDER BY stopped_at IS NOT NULL, started_at DESC, id;

-- name: observe_dlq
-- Dead letters not yet replayed, per queue and task: how many, how many in the last hour,
-- the newest and oldest one's age, and the most common reason.
SELECT queue, task, count(*) AS dead,
       count(*) FILTER (WHERE dead_at > now() - interval '1 hour') AS dead_1h,
       extract(epoch FROM now() - max(dead_at))::double precision AS newest_age,
       extract(epoch FROM now() - min(dead_at))::double precision AS oldest_age,
       mode() WITHIN GROUP (ORDER BY reason) AS top_reason
FROM {ns}.dead_letters
WHERE replayed_at IS NULL
GROUP BY queue, task
ORDER BY count(*) DESC, queue, task;

-- name: observe_schedules
-- Every schedule entry: when it runs next (negative: overdue), when it last ran, its runs,
-- its last error and that error's age.
SELECT name, task, queue, enabled,
       extract(epoch FROM next_run_at - now())::double precision AS next_run_in,
       extract(epoch FROM now() - last_run_at)::double precision AS last_run_age,
       total_runs, drift, last_error,
       extract(epoch FROM now() - last_error_at)::double precision AS last_error_age
FROM {ns}.schedules
ORDER BY name;
