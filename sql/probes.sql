-- Health probes (stem check): readings of the queue_health view, workers and schedules.

-- name: probe_queues
-- Each queue's depth, oldest ready age and recent failures (the queue_health view).
SELECT queue, ready, oldest_ready_age, finished_15m, failed_15m, failure_rate_15m
FROM {ns}.queue_health
ORDER BY queue;

-- name: probe_workers_alive
-- The queues of each alive worker (not stopped, heartbeat within stale_after seconds),
-- as stem worker status decides.
SELECT queues
FROM {ns}.workers
WHERE stopped_at IS NULL
  AND last_heartbeat_at > now() - make_interval(secs => %(stale_after)s);

-- name: probe_late_schedules
-- Enabled, unexpired schedule entries whose next run is overdue by more than max_lag seconds
-- (schedules_due_idx).
SELECT name, extract(epoch FROM now() - next_run_at)::double precision AS lag
FROM {ns}.schedules
WHERE enabled
  AND next_run_at < now() - make_interval(secs => %(max_lag)s)
  AND (expires_at IS NULL OR expires_at > now())
ORDER BY next_run_at, name;
