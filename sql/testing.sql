-- What stem_pg.testing reads and changes in a test's namespace. {ns} is the namespace schema.

-- name: testing_unsettled
-- Jobs of these queues (and of these tasks; NULL: any) that are due or running, or with %(scheduled)s waiting too: while any is, run_until_idle goes on.
SELECT count(*)::int
FROM {ns}.jobs
WHERE queue = ANY(%(queues)s::text[])
  AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
  AND (state = 'running' OR not_before <= now() OR %(scheduled)s);

-- name: testing_make_due
-- run_until_idle(with_scheduled=True): waiting jobs of these queues and tasks run now, not at their countdown, eta or retry delay.
UPDATE {ns}.jobs
SET not_before = now()
WHERE queue = ANY(%(queues)s::text[])
  AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
  AND state IN ('queued', 'retried')
  AND not_before > now();

-- name: testing_queues
-- The queues that hold live jobs (run_until_idle's default, with the app's own queues).
SELECT DISTINCT queue FROM {ns}.jobs ORDER BY queue;

-- name: testing_jobs
-- Live jobs, oldest first, optionally of one task and one queue (enqueued_jobs, assert_enqueued).
SELECT id, task, queue, priority, state, args, headers - 'stem-signature' AS headers, attempts,
       max_retries, enqueued_at, not_before
FROM {ns}.jobs
WHERE (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
ORDER BY seq;

-- name: testing_drop_namespace
-- The end of a test's namespace (the stem_namespace fixture): its schema and everything in it.
DROP SCHEMA IF EXISTS {ns} CASCADE;
