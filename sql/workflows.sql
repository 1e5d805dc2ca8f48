-- Durable workflow runs. {ns} is the namespace schema. A run is executed by one
-- job at a time (wf_runs.job_id); every write a running job makes is guarded by
-- that job's lease token, so a worker that lost the lease changes nothing.

-- name: wf_run_create
-- Record a new run (its first job is inserted in the same transaction); an existing id is left alone.
INSERT INTO {ns}.wf_runs (id, workflow, params, queue, priority, max_retries, job_id,
                          parent_run_id, parent_step, deadline_at, max_suspended)
VALUES (%(id)s, %(workflow)s, %(params)s::jsonb, %(queue)s, %(priority)s, %(max_retries)s,
        %(job_id)s, %(parent_run_id)s, %(parent_step)s,
        now() + make_interval(secs => %(max_run_time)s::float8), %(max_suspended)s)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: wf_run_load
-- A run, for the job that is about to execute it.
SELECT id, workflow, params, status, job_id, resumes, parent_run_id, deadline_at,
       max_suspended, suspended_at, wake_at, waiting_for, created_at, queue
FROM {ns}.wf_runs
WHERE id = %(run_id)s;

-- name: wf_steps_load
-- The checkpoints of a run, in the order they were made.
SELECT step, kind, output, error
FROM {ns}.wf_steps
WHERE run_id = %(run_id)s
ORDER BY seq;

-- name: wf_run_begin
-- The run's current job starts executing it: running again (also after a dead-letter replay).
UPDATE {ns}.wf_runs AS r
SET status = 'running', waiting_for = NULL, wake_at = NULL, suspended_at = NULL,
    error = NULL, finished_at = NULL, updated_at = now()
FROM {ns}.jobs AS j
WHERE r.id = %(run_id)s AND r.job_id = %(job_id)s AND r.status IN ('running', 'suspended', 'failed')
  AND j.id = r.job_id AND j.lease_token = %(token)s
RETURNING r.id;

-- name: wf_step_record
-- Checkpoint a step's output, if this job still runs the run; an existing checkpoint wins.
INSERT INTO {ns}.wf_steps (run_id, step, kind, output, error, job_id, attempt)
SELECT r.id, %(step)s, %(kind)s, %(output)s::jsonb, %(error)s, r.job_id, j.attempts
FROM {ns}.wf_runs AS r
JOIN {ns}.jobs AS j ON j.id = r.job_id
WHERE r.id = %(run_id)s AND r.job_id = %(job_id)s AND r.status = 'running'
  AND j.lease_token = %(token)s
ON CONFLICT (run_id, step) DO NOTHING
RETURNING seq;

-- name: wf_step_get
-- One checkpoint of a run (after a record that wrote nothing: who wrote it, if anyone).
SELECT step, kind, output, error
FROM {ns}.wf_steps
WHERE run_id = %(run_id)s AND step = %(step)s;

-- name: wf_run_lock
-- Lock the run for a decision that must not race a wake-up (child ended, event delivered);
-- only while this job still runs it.
SELECT r.status
FROM {ns}.wf_runs AS r
JOIN {ns}.jobs AS j ON j.id = r.job_id
WHERE r.id = %(run_id)s AND r.job_id = %(job_id)s AND j.lease_token = %(token)s
FOR UPDATE OF r;

-- name: wf_suspend
-- Suspend the run (after wf_run_lock): its next job takes over, scheduled for resume_at,
-- or none until a wake-up (event, child) when resume_at is null. headers: what tracing
-- adds to the next job's (stem_pg.core.trace_hooks.TRACE_HEADERS), else '{}'.
WITH run AS (
    UPDATE {ns}.wf_runs AS r
    SET status = 'suspended', job_id = %(next_job_id)s, resumes = r.resumes + 1,
        waiting_for = %(waiting_for)s, wake_at = %(wake_at)s,
        suspended_at = coalesce(r.suspended_at, now()), updated_at = now()
    WHERE r.id = %(run_id)s AND r.job_id = %(job_id)s AND r.status = 'running'
    RETURNING r.*
),
resume AS (
    INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries, not_before)
    SELECT %(next_job_id)s, run.workflow, run.queue, run.priority,
           jsonb_build_object('run_id', run.id),
           jsonb_build_object('stem-workflow', run.id) || %(headers)s::jsonb,
           run.max_retries, %(resume_at)s::timestamptz
    FROM run
    WHERE %(resume_at)s::timestamptz IS NOT NULL
)
SELECT count(*) AS suspended FROM run;

-- name: wf_waiter_add
-- Register the run for events on a topic (in the suspending transaction).
INSERT INTO {ns}.wf_waiters (run_id, step, topic, deadline_at)
VALUES (%(run_id)s, %(step)s, %(topic)s, %(deadline_at)s)
ON CONFLICT (run_id, step) DO NOTHING;

-- name: wf_waiter_take
-- The deadline of an await passed: take the waiter back (false if an emit took it first).
DELETE FROM {ns}.wf_waiters
WHERE run_id = %(run_id)s AND step = %(step)s
RETURNING deadline_at;

-- name: wf_waiter_get
-- The waiter of one await step, if it is still registered.
SELECT deadline_at FROM {ns}.wf_waiters WHERE run_id = %(run_id)s AND step = %(step)s;

-- name: wf_emit
-- Deliver an event to every run waiting on the topic: record it as their await step's
-- output and wake them. Returns the runs it reached. The runs are locked first, in id
-- order, as a resuming job locks its run before its waiter: the two cannot deadlock.
WITH runs AS (
    SELECT r.id
    FROM {ns}.wf_runs AS r
    WHERE r.id IN (SELECT run_id FROM {ns}.wf_waiters WHERE topic = %(topic)s)
    ORDER BY r.id
    FOR UPDATE OF r
),
taken AS (
    DELETE FROM {ns}.wf_waiters
    WHERE topic = %(topic)s AND run_id IN (SELECT id FROM runs)
    RETURNING run_id, step
),
recorded AS (
    INSERT INTO {ns}.wf_steps (run_id, step, kind, output)
    SELECT run_id, step, 'event', %(payload)s::jsonb FROM taken
    ON CONFLICT (run_id, step) DO NOTHING
    RETURNING run_id
)
SELECT array_agg(run_id) AS run_ids FROM recorded;

-- name: wf_wake
-- Resume suspended runs now (their resume job is inserted or brought forward).
SELECT {ns}.wf_wake(%(ns)s, %(run_ids)s::text[]) AS woken;

-- name: wf_child_get
-- A child run's state, for its parent.
SELECT status, result, error FROM {ns}.wf_runs WHERE id = %(run_id)s;

-- name: wf_cancel
-- Cancel a run and every run below it that has not ended; returns their jobs to revoke.
WITH RECURSIVE tree AS (
    SELECT id FROM {ns}.wf_runs WHERE id = %(run_id)s
    UNION
    SELECT c.id FROM {ns}.wf_runs AS c JOIN tree AS t ON c.parent_run_id = t.id
),
cancelled AS (
    UPDATE {ns}.wf_runs AS r
    SET status = 'cancelled', error = %(reason)s, waiting_for = NULL, wake_at = NULL,
        finished_at = now(), updated_at = now()
    FROM tree
    WHERE r.id = tree.id AND r.status IN ('running', 'suspended')
    RETURNING r.id, r.job_id, r.parent_run_id
),
waiters AS (
    DELETE FROM {ns}.wf_waiters AS w USING cancelled AS c WHERE w.run_id = c.id
),
told AS (
    SELECT pg_notify(%(done_channel)s, c.id) FROM cancelled AS c
)
SELECT c.id, c.job_id, c.parent_run_id, (SELECT count(*) FROM told) AS told
FROM cancelled AS c;

-- name: wf_rewind
-- Rewind a run that is not executing right now to before a step: that checkpoint and
-- every later one are deleted, and a new job runs the run from there.
WITH run AS (
    UPDATE {ns}.wf_runs AS r
    SET status = 'running', job_id = %(next_job_id)s, resumes = r.resumes + 1, result = NULL,
        error = NULL, waiting_for = NULL, wake_at = NULL, suspended_at = NULL, finished_at = NULL,
        updated_at = now()
    WHERE r.id = %(run_id)s
      AND NOT EXISTS (SELECT 1 FROM {ns}.jobs AS j WHERE j.id = r.job_id AND j.state = 'running')
    RETURNING r.*
),
dropped AS (
    DELETE FROM {ns}.wf_steps AS s
    USING run
    WHERE s.run_id = run.id AND s.seq >= %(seq)s
    RETURNING s.step
),
waiters AS (
    DELETE FROM {ns}.wf_waiters AS w USING run WHERE w.run_id = run.id
),
job AS (
    INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries)
    SELECT %(next_job_id)s, run.workflow, run.queue, run.priority,
           jsonb_build_object('run_id', run.id), jsonb_build_object('stem-workflow', run.id),
           run.max_retries
    FROM run
)
SELECT (SELECT count(*) FROM run) AS rewound, (SELECT count(*) FROM dropped) AS dropped;

-- name: wf_run_show
-- One run as the workflow_runs view shows it.
SELECT id, workflow, status, params, result, error, parent_run_id, parent_step, waiting_for,
       wake_at, job_id, resumes, steps_done, created_at, updated_at, finished_at
FROM {ns}.workflow_runs
WHERE id = %(run_id)s;

-- name: wf_run_list
-- Runs, newest first, optionally of one status or workflow.
SELECT id, workflow, status, params, result, error, parent_run_id, parent_step, waiting_for,
       wake_at, job_id, resumes, steps_done, created_at, updated_at, finished_at
FROM {ns}.workflow_runs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(workflow)s::text IS NULL OR workflow = %(workflow)s)
ORDER BY created_at DESC
LIMIT %(limit)s;

-- name: wf_step_list
-- A run's checkpoints as the workflow_steps view shows them.
SELECT run_id, step, kind, seq, output, error, job_id, attempt, finished_at
FROM {ns}.workflow_steps
WHERE run_id = %(run_id)s
ORDER BY seq;

-- name: wf_waiter_list
-- Runs waiting for events, optionally on one topic.
SELECT w.topic, w.run_id, r.workflow, w.step, w.deadline_at, w.created_at
FROM {ns}.wf_waiters AS w
JOIN {ns}.wf_runs AS r ON r.id = w.run_id
WHERE %(topic)s::text IS NULL OR w.topic = %(topic)s
ORDER BY w.topic, w.created_at;

-- name: wf_run_prune
-- Retention: ended runs older than the given age go, with their checkpoints.
DELETE FROM {ns}.wf_runs
WHERE id IN (
    SELECT id FROM {ns}.wf_runs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND finished_at < now() - make_interval(secs => %(older_than)s)
    LIMIT %(limit)s
);
