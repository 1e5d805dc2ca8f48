-- The queue engine's queries. {ns} is the namespace schema.

-- name: job_enqueue
-- Insert one job; an id that is already live is left alone (idempotent enqueue).
-- With a %(channel)s, a job that may run now also wakes its queue's workers from this
-- statement, so they hear of it as it commits (stem_pg.waker: a lone, idle enqueue).
WITH job AS (
    INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries,
                           not_before, expires_at, visibility_timeout, acks_late)
    VALUES (%(id)s, %(task)s, %(queue)s, %(priority)s, %(args)s::jsonb, %(headers)s::jsonb,
            %(max_retries)s,
            coalesce(%(eta)s::timestamptz, now() + make_interval(secs => coalesce(%(countdown)s::float8, 0))),
            coalesce(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in)s::float8)),
            %(visibility_timeout)s, %(acks_late)s)
    ON CONFLICT (id) DO NOTHING
    RETURNING queue, not_before
)
SELECT pg_notify(%(channel)s, queue) FROM job WHERE %(channel)s::text IS NOT NULL AND not_before <= now();

-- name: job_enqueue_many
-- Insert many jobs from parallel arrays in one statement (one NOTIFY per queue via the trigger).
INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries,
                       not_before, expires_at, visibility_timeout, acks_late)
SELECT id, task, queue, priority, args::jsonb, headers::jsonb, max_retries,
       coalesce(eta, now() + make_interval(secs => coalesce(countdown, 0))),
       coalesce(expires_at, now() + make_interval(secs => expires_in)),
       visibility_timeout, acks_late
FROM unnest(%(id)s::text[], %(task)s::text[], %(queue)s::text[], %(priority)s::smallint[],
            %(args)s::text[], %(headers)s::text[], %(max_retries)s::int[],
            %(eta)s::timestamptz[], %(countdown)s::float8[], %(expires_at)s::timestamptz[],
            %(expires_in)s::float8[], %(visibility_timeout)s::int[], %(acks_late)s::bool[])
    AS r(id, task, queue, priority, args, headers, max_retries, eta, countdown, expires_at,
         expires_in, visibility_timeout, acks_late)
ON CONFLICT (id) DO NOTHING;

-- name: job_copy
-- Bulk insert of immediate jobs with fresh ids (COPY is about twice as fast as INSERT).
COPY {ns}.jobs (id, task, queue, priority, args, headers, max_retries, visibility_timeout, acks_late)
FROM STDIN;

-- name: client_notifies
-- Set on stem_pg's pool connections: their inserts leave wake-ups to the waker (migration 0005).
SET stem.client_notifies = on;

-- name: job_wake
-- Wake the workers of these queues (the waker sends it after the inserting commits).
SELECT pg_notify(%(channel)s, q) FROM unnest(%(queues)s::text[]) AS q;

-- name: job_claim_planner
-- Set once on a worker's claim connection: job_claim walks jobs_claim_idx in its order, whatever the statistics say.
-- The claim wants the first rows of a queue in jobs_claim_idx's order, which the index
-- gives with no sort. But the planner costs that walk against reading every matching row
-- and sorting them, by its row estimate: on a table it thinks small (never analyzed, or
-- analyzed while quiet: autovacuum off, or still napping) a burst of 100k jobs had every
-- claim read and sort the whole backlog (~60 ms, a merge sort on disk; 3 ms for the walk).
-- With sorts off, the walk is the claim's only plan. A setting of the session, not of the
-- claim's transaction: a statement is planned before it runs, so a set_config inside the
-- claim comes too late, and a SET LOCAL before it (a transaction of two statements) cost
-- ~230 us more per claim. The only other query this connection runs, broadcast_claim,
-- walks its own claim index in order too.
SET enable_sort = off;

-- name: job_claim_ready
-- job_claim on a connection whose session does not plan claims (a pooler's, or one other loops share): one statement that brings its own plan.
-- claim_ready (migration 0021) is job_claim in a function declared with SET enable_sort =
-- off: a pooler hands each transaction to any server session, and the minimal mode's shared
-- connection runs the other loops' statements too, so neither can keep job_claim_planner
-- for the session. Before 0020 each such claim was BEGIN, SET LOCAL, the claim and COMMIT:
-- pipelined one round trip, but ~1 ms more than one statement on an idle worker.
SELECT id, task, queue, priority, args, headers, attempts, max_retries, expires_at,
       visibility_timeout, acks_late, signature, waited, args_size
FROM {ns}.claim_ready(%(queue)s, %(limit)s::int, %(worker_id)s, %(token)s::uuid,
                      %(lease_seconds)s::float8, %(tasks)s::text[]);

-- name: job_claim
-- Lease up to %(limit)s due jobs of one queue: highest priority first, then in the order they became due; nothing while the queue is paused.
-- The order is jobs_claim_idx's (queue, priority DESC, not_before, seq): inside a bucket the due
-- rows come first, so the walk stops at the limit before any job scheduled for later
-- (migration 0014).
-- Only jobs of the task names in %(tasks)s (the worker's registry; NULL: any task), so a worker
-- of an older release leaves a task only a newer one knows to the newer one.
-- The claim is a durable commit (never synchronous_commit off, even where the session's
-- default is): a claim the worker was told of survives a server crash, so the job cannot
-- go back to the queue and run elsewhere while this worker runs it.
WITH durable AS MATERIALIZED (
    SELECT set_config('synchronous_commit',
                      CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on'
                      ELSE current_setting('synchronous_commit') END, true)
),
picked AS MATERIALIZED (
    SELECT id
    FROM {ns}.jobs
    WHERE queue = %(queue)s
      AND state IN ('queued', 'retried')
      AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
      AND not_before <= now()
      AND NOT EXISTS (SELECT 1 FROM {ns}.paused_queues AS p WHERE p.queue = %(queue)s)
    ORDER BY priority DESC, not_before, seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {ns}.jobs AS j
SET state = 'running',
    attempts = j.attempts + 1,
    started_at = now(),
    worker_id = %(worker_id)s,
    lease_token = %(token)s,
    lease_expires_at = now() + make_interval(secs => coalesce(j.visibility_timeout, %(lease_seconds)s))
FROM picked, durable
WHERE j.id = picked.id
RETURNING j.id, j.task, j.queue, j.priority,
          -- empty arguments and headers come back as NULL: no JSON decoding in the worker;
          -- a payload signature comes apart, as text (most signed jobs have no other header).
          -- The size test first: comparing a large (TOASTed) args with '{{}}' would read and
          -- detoast all of it once more before it is sent (pg_column_size reads no data).
          CASE WHEN pg_column_size(j.args) <= 8 AND j.args = '{{}}'::jsonb THEN NULL
               ELSE j.args END AS args,
          nullif(j.headers - 'stem-signature', '{{}}'::jsonb) AS headers,
          j.attempts, j.max_retries, j.expires_at, j.visibility_timeout, j.acks_late,
          j.headers ->> 'stem-signature' AS signature,
          extract(epoch FROM now() - greatest(j.enqueued_at, j.not_before))::float8 AS waited,
          pg_column_size(j.args) AS args_size;

-- name: job_waiting_unregistered
-- At a worker's start: which jobs waiting on its queues it will never claim (their task is not
-- among %(tasks)s), counted by task. One pass over the queues' waiting jobs.
SELECT task, count(*)::int AS waiting
FROM {ns}.jobs
WHERE queue = ANY(%(queues)s::text[])
  AND state IN ('queued', 'retried')
  AND NOT (task = ANY(%(tasks)s::text[]))
GROUP BY task
ORDER BY count(*) DESC, task;

-- name: job_finish
-- Move leased jobs to results (succeeded, failed or cancelled) and, when a reason is
-- given, to the dead letters; jobs whose lease token no longer matches are skipped, and
-- returned in `skipped` (their lease ran out and another worker took them over).
-- One NOTIFY tells result waiters which ids finished ('*' when the list is too long).
-- The batch arrives as one JSON array of [id, token, state, result, error, traceback,
-- dead_reason, keep] rows: one string to send instead of eight arrays to build.
-- The `id = ANY(...)` keeps the plan on the primary key whatever the statistics say
-- (this and the other batch updates below join on it).
WITH input AS MATERIALIZED (
    SELECT e ->> 0 AS id, (e ->> 1)::uuid AS token, e ->> 2 AS state, e ->> 3 AS result,
           e ->> 4 AS error, e ->> 5 AS traceback, e ->> 6 AS dead_reason, (e ->> 7)::bool AS keep
    FROM jsonb_array_elements(%(outcomes)s::jsonb) AS e
),
done AS (
    DELETE FROM {ns}.jobs AS j
    USING input AS i
    WHERE j.id = ANY(ARRAY(SELECT id FROM input)) AND j.id = i.id AND j.lease_token = i.token
    RETURNING j.*, i.state AS final_state, i.result AS final_result, i.error AS final_error,
              i.traceback AS final_traceback, i.dead_reason, i.keep
),
dead AS (
    INSERT INTO {ns}.dead_letters (task_id, task, queue, priority, args, headers, max_retries,
                                   reason, error, errors, attempts, enqueued_at)
    SELECT id, task, queue, priority, args, headers, max_retries, dead_reason, final_error,
           errors || jsonb_build_array(jsonb_build_object(
               'attempt', attempts, 'error', final_error, 'at', now())),
           attempts, enqueued_at
    FROM done
    WHERE dead_reason IS NOT NULL
),
stored AS (
    INSERT INTO {ns}.results (id, task, queue, priority, state, result, error, traceback,
                              attempts, enqueued_at, started_at, finished_at, worker_id, expires_at)
    SELECT id, task, queue, priority, final_state, final_result::jsonb, final_error,
           final_traceback, attempts, enqueued_at, started_at, now(), worker_id,
           now() + make_interval(secs => %(result_ttl)s)
    FROM done
    WHERE keep
    ON CONFLICT (id) DO UPDATE
    SET task = excluded.task, queue = excluded.queue, priority = excluded.priority,
        state = excluded.state, result = excluded.result, error = excluded.error,
        traceback = excluded.traceback, attempts = excluded.attempts,
        enqueued_at = excluded.enqueued_at, started_at = excluded.started_at,
        finished_at = excluded.finished_at, worker_id = excluded.worker_id,
        expires_at = excluded.expires_at
)
SELECT (SELECT count(*) FROM done) AS finished,
       (SELECT pg_notify(%(channel)s,
                         CASE WHEN sum(length(id) + 1) < 7900 THEN string_agg(id, ',') ELSE '*' END)
        FROM done HAVING count(*) > 0) AS notified,
       ARRAY(SELECT id FROM input EXCEPT SELECT id FROM done) AS skipped;

-- name: job_retry
-- Put leased jobs back for a later attempt, recording the error in their history.
UPDATE {ns}.jobs AS j
SET state = 'retried',
    not_before = now() + make_interval(secs => i.delay),
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'error', i.error, 'at', now())),
    lease_token = NULL,
    lease_expires_at = NULL,
    worker_id = NULL
FROM unnest(%(id)s::text[], %(token)s::uuid[], %(delay)s::float8[], %(error)s::text[])
    AS i(id, token, delay, error)
WHERE j.id = ANY(%(id)s::text[]) AND j.id = i.id AND j.lease_token = i.token;

-- name: job_release
-- Return leased jobs that never started (worker shutting down); the attempt is not counted.
UPDATE {ns}.jobs AS j
SET state = CASE WHEN j.attempts > 1 THEN 'retried' ELSE 'queued' END,
    attempts = j.attempts - 1,
    started_at = NULL,
    debounce_key = NULL,  -- back to queued: a debounced job of its key may wait already
    lease_token = NULL,
    lease_expires_at = NULL,
    worker_id = NULL
FROM unnest(%(id)s::text[], %(token)s::uuid[]) AS i(id, token)
WHERE j.id = ANY(%(id)s::text[]) AND j.id = i.id AND j.lease_token = i.token;

-- name: job_give_back
-- A worker that stops on purpose (signal, shutdown command, its supervisor) puts back every
-- job it still holds, in this one statement, before it exits. A job whose handler it
-- interrupted (%(started)s) is retried at once: the attempt counts and %(error)s joins its
-- history, as job_retry does. A job it never started goes back as it was, the attempt not
-- counted (queued, or retried if an earlier attempt ran), as job_release does. Jobs whose
-- lease token no longer matches are left alone. Returns how many went each way.
WITH given AS (
    UPDATE {ns}.jobs AS j
    SET state = CASE WHEN i.started OR j.attempts > 1 THEN 'retried' ELSE 'queued' END,
        attempts = CASE WHEN i.started THEN j.attempts ELSE j.attempts - 1 END,
        not_before = CASE WHEN i.started THEN now() ELSE j.not_before END,
        started_at = CASE WHEN i.started THEN j.started_at END,
        debounce_key = NULL,  -- as job_release
        errors = CASE WHEN i.started
                      THEN j.errors || jsonb_build_array(jsonb_build_object(
                               'attempt', j.attempts, 'error', %(error)s::text, 'at', now()))
                      ELSE j.errors END,
        lease_token = NULL,
        lease_expires_at = NULL,
        worker_id = NULL
    FROM unnest(%(id)s::text[], %(token)s::uuid[], %(started)s::bool[]) AS i(id, token, started)
    WHERE j.id = ANY(%(id)s::text[]) AND j.id = i.id AND j.lease_token = i.token
    RETURNING i.started
)
SELECT count(*) FILTER (WHERE started) AS retried, count(*) FILTER (WHERE NOT started) AS released
FROM given;

-- name: job_extend_leases
-- Heartbeat: push the lease expiry of held jobs; returns the ids whose lease is still ours.
-- A durable commit like the claim's: an extension the worker was told of survives a crash.
WITH durable AS MATERIALIZED (
    SELECT set_config('synchronous_commit',
                      CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on'
                      ELSE current_setting('synchronous_commit') END, true)
)
UPDATE {ns}.jobs AS j
SET lease_expires_at = now() + make_interval(secs => i.seconds),
    progress = coalesce(i.progress::jsonb, j.progress)
FROM unnest(%(id)s::text[], %(token)s::uuid[], %(seconds)s::float8[], %(progress)s::text[])
    AS i(id, token, seconds, progress), durable
WHERE j.id = ANY(%(id)s::text[]) AND j.id = i.id AND j.lease_token = i.token
RETURNING j.id;

-- name: job_rescue_expired
-- Rescuer: running jobs whose lease expired (worker crashed or froze) go back to
-- 'retried' when attempts remain and the task acks late; otherwise they fail and
-- are dead-lettered with reason lease_expired. Returns how many went each way.
WITH expired AS (
    SELECT id
    FROM {ns}.jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
requeued AS (
    UPDATE {ns}.jobs AS j
    SET state = 'retried',
        not_before = now(),
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'error', 'lease expired on worker ' || coalesce(j.worker_id, '?'),
            'at', now())),
        lease_token = NULL,
        lease_expires_at = NULL,
        worker_id = NULL
    FROM expired
    WHERE j.id = expired.id AND j.acks_late AND j.attempts <= j.max_retries
    RETURNING j.id
),
lost AS (
    DELETE FROM {ns}.jobs AS j
    USING expired
    WHERE j.id = expired.id AND NOT (j.acks_late AND j.attempts <= j.max_retries)
    RETURNING j.*
),
dead AS (
    INSERT INTO {ns}.dead_letters (task_id, task, queue, priority, args, headers, max_retries,
                                   reason, error, errors, attempts, enqueued_at)
    SELECT id, task, queue, priority, args, headers, max_retries, 'lease_expired',
           'lease expired on worker ' || coalesce(worker_id, '?'), errors, attempts, enqueued_at
    FROM lost
),
stored AS (
    INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                              started_at, finished_at, worker_id, expires_at)
    SELECT id, task, queue, priority, 'failed',
           'lease expired on worker ' || coalesce(worker_id, '?'), attempts, enqueued_at,
           started_at, now(), worker_id, now() + make_interval(secs => %(result_ttl)s)
    FROM lost
    ON CONFLICT (id) DO UPDATE
    SET state = excluded.state, error = excluded.error, attempts = excluded.attempts,
        finished_at = excluded.finished_at, worker_id = excluded.worker_id,
        expires_at = excluded.expires_at
)
SELECT (SELECT count(*) FROM requeued) AS requeued,
       (SELECT count(*) FROM lost) AS failed,
       (SELECT pg_notify(%(channel)s, string_agg(id, ',')) FROM lost HAVING count(*) > 0) AS notified;

-- name: job_cancel_expired
-- Jobs whose `expires` passed before a worker started them are cancelled, not run.
-- Returns the cancelled ids, and tells result waiters.
WITH expired AS (
    DELETE FROM {ns}.jobs
    WHERE id IN (
        SELECT id FROM {ns}.jobs
        WHERE state IN ('queued', 'retried') AND expires_at < now()
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
)
INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                          finished_at, expires_at)
SELECT id, task, queue, priority, 'cancelled', 'expired before it started', attempts,
       enqueued_at, now(), now() + make_interval(secs => %(result_ttl)s)
FROM expired
ON CONFLICT (id) DO UPDATE
SET state = excluded.state, error = excluded.error, finished_at = excluded.finished_at,
    expires_at = excluded.expires_at
RETURNING id, pg_notify(%(channel)s, id);

-- name: result_prune
-- Retention: delete results past their expiry, a bounded batch at a time.
DELETE FROM {ns}.results
WHERE id IN (
    SELECT id FROM {ns}.results WHERE expires_at < now() LIMIT %(limit)s
);

-- name: task_status
-- The state of some task ids, live or finished (the task_states view, by id).
SELECT id, task, queue, priority, state, attempts, enqueued_at, started_at, finished_at,
       worker_id, error, progress
FROM {ns}.task_states
WHERE id = ANY(%(ids)s::text[]);

-- name: task_result
-- The stored outcome of one finished task.
SELECT id, task, queue, priority, state, result, error, traceback, attempts, enqueued_at,
       started_at, finished_at, worker_id
FROM {ns}.results
WHERE id = %(id)s;

-- name: task_show
-- Everything known about one task id: its live row, its result, its dead letters.
SELECT s.id, s.task, s.queue, s.priority, s.state, s.attempts, s.enqueued_at, s.started_at,
       s.finished_at, s.worker_id, s.error, r.result, r.traceback,
       j.args, j.headers, j.errors, j.not_before, j.lease_expires_at, j.progress
FROM {ns}.task_states AS s
LEFT JOIN {ns}.results AS r ON r.id = s.id
LEFT JOIN {ns}.jobs AS j ON j.id = s.id
WHERE s.id = %(id)s;

-- name: job_unique_release
-- Unique tasks: free keys whose unique_for ran out, so a new enqueue can take them.
UPDATE {ns}.jobs
SET unique_key = NULL
WHERE unique_key = ANY(%(keys)s::text[]) AND unique_until <= now()
RETURNING id;

-- name: job_enqueue_unique
-- Insert jobs that carry a unique key; a key (or id) that is already live is skipped.
-- Returns the ids actually inserted; the caller looks up the holders of the others.
INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries,
                       not_before, expires_at, visibility_timeout, acks_late, unique_key,
                       unique_until)
SELECT id, task, queue, priority, args::jsonb, headers::jsonb, max_retries,
       coalesce(eta, now() + make_interval(secs => coalesce(countdown, 0))),
       coalesce(expires_at, now() + make_interval(secs => expires_in)),
       visibility_timeout, acks_late, unique_key, now() + make_interval(secs => unique_for)
FROM unnest(%(id)s::text[], %(task)s::text[], %(queue)s::text[], %(priority)s::smallint[],
            %(args)s::text[], %(headers)s::text[], %(max_retries)s::int[],
            %(eta)s::timestamptz[], %(countdown)s::float8[], %(expires_at)s::timestamptz[],
            %(expires_in)s::float8[], %(visibility_timeout)s::int[], %(acks_late)s::bool[],
            %(unique_key)s::text[], %(unique_for)s::float8[])
    AS r(id, task, queue, priority, args, headers, max_retries, eta, countdown, expires_at,
         expires_in, visibility_timeout, acks_late, unique_key, unique_for)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: job_unique_holders
-- Which live job holds each of these unique keys.
SELECT unique_key, id
FROM {ns}.jobs
WHERE unique_key = ANY(%(keys)s::text[]);

-- name: job_debounce_holder
-- Debounced enqueue: the job of this task and key that waits to start (jobs_debounce_idx),
-- locked until the replacing transaction ends; none once a worker claimed it.
SELECT id
FROM {ns}.jobs
WHERE task = %(task)s AND debounce_key = %(key)s AND debounce_key IS NOT NULL AND state = 'queued'
FOR UPDATE;

-- name: job_debounce_replace
-- Replace the locked holder's call (arguments, headers, options) and run it %(delay)s seconds from now.
UPDATE {ns}.jobs
SET queue = %(queue)s, priority = %(priority)s, args = %(args)s::jsonb, headers = %(headers)s::jsonb,
    max_retries = %(max_retries)s,
    not_before = now() + make_interval(secs => %(delay)s),
    expires_at = coalesce(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in)s::float8)),
    visibility_timeout = %(visibility_timeout)s, acks_late = %(acks_late)s
WHERE id = %(id)s AND state = 'queued';

-- name: job_debounce_insert
-- A new debounced job, %(delay)s seconds from now; nothing when another producer's job of the
-- key got in first (the caller then replaces that one). Returns the id if inserted.
INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries, not_before,
                       expires_at, visibility_timeout, acks_late, debounce_key)
VALUES (%(id)s, %(task)s, %(queue)s, %(priority)s, %(args)s::jsonb, %(headers)s::jsonb,
        %(max_retries)s, now() + make_interval(secs => %(delay)s),
        coalesce(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in)s::float8)),
        %(visibility_timeout)s, %(acks_late)s, %(key)s)
ON CONFLICT DO NOTHING
RETURNING id;
