-- Operator actions on a whole queue (QueueStore): `stem purge`. {ns} is the namespace schema.

-- name: queue_waiting_count
-- How many jobs of a queue wait (ready or scheduled, not running): what a purge would delete.
SELECT count(*)::int AS waiting
FROM {ns}.jobs
WHERE queue = %(queue)s AND state IN ('queued', 'retried');

-- name: queue_purge
-- Delete a queue's waiting jobs (ready or scheduled); running jobs, results and dead letters
-- stay. A job a worker claims meanwhile is running by the time the DELETE sees it, and stays.
DELETE FROM {ns}.jobs
WHERE queue = %(queue)s AND state IN ('queued', 'retried');
