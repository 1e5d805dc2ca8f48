-- Queries of `stem demo`.

-- name: demo_state_counts
-- How many of the tasks enqueued since the run began are in each state (the demo's last lines).
SELECT state, count(*)::int AS count
FROM {ns}.task_states
WHERE enqueued_at >= %(since)s
GROUP BY state
ORDER BY state;

-- name: demo_now
-- The database's clock, when a demo run begins.
SELECT clock_timestamp();
