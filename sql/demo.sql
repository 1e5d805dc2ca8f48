-- Queries of `stem demo`.

-- name: demo_state_counts
-- How many tasks are in each state (what the demo prints at the end).
SELECT state, count(*)::int AS count FROM {ns}.task_states GROUP BY state ORDER BY state;
