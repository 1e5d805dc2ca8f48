-- The worker control plane: commands and replies, revokes, paused queues.
-- {ns} is the namespace schema; channels are passed in, already namespaced.
-- Workers act on rows only: a NOTIFY tells them (or a waiting client) to look, and its
-- payload is ignored, so a role that may only NOTIFY can command nothing.

-- name: control_notify
-- Send one wake-up hint (to workers: a command row waits; to a client: a reply row waits).
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: control_command_lock
-- Serialise command writers of a namespace (transaction-scoped), so ids commit in order and
-- "newer than my cursor" is all a worker has to read.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0));

-- name: control_command_insert
-- Record one command (after control_command_lock, in the same transaction). No RETURNING:
-- an operator needs INSERT on the table, not SELECT.
INSERT INTO {ns}.control_commands (request_id, command, args, targets, wants_reply)
VALUES (%(request_id)s, %(command)s, %(args)s::jsonb, %(targets)s::text[], %(wants_reply)s);

-- name: control_command_cursor
-- The newest command id: a starting worker acts only on commands after it.
SELECT coalesce(max(id), 0) AS id FROM {ns}.control_commands;

-- name: control_command_since
-- Commands newer than id %(after)s, oldest first (every worker reads them all; targets filter).
SELECT id, request_id, command, args, targets, wants_reply
FROM {ns}.control_commands
WHERE id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: control_command_prune
-- Forget commands older than %(keep)s seconds.
DELETE FROM {ns}.control_commands
WHERE created_at < now() - make_interval(secs => %(keep)s);

-- name: control_reply_store
-- Record a worker's reply to one command and hint the asker (on a channel derived from the
-- command's request id) that it is there.
WITH stored AS (
    INSERT INTO {ns}.control_replies (request_id, worker_id, payload)
    VALUES (%(request_id)s, %(worker_id)s, %(payload)s::jsonb)
    ON CONFLICT (request_id, worker_id) DO UPDATE SET payload = excluded.payload, created_at = now()
    RETURNING request_id
)
SELECT pg_notify(%(channel)s, '') FROM stored;

-- name: control_reply_take
-- Fetch (and forget) the replies to one command that arrived so far.
DELETE FROM {ns}.control_replies
WHERE request_id = %(request_id)s
RETURNING worker_id, payload;

-- name: control_reply_prune
-- Forget replies nobody fetched within %(keep)s seconds.
DELETE FROM {ns}.control_replies
WHERE created_at < now() - make_interval(secs => %(keep)s);

-- name: revoke_lock
-- Serialise revoke writers of a namespace (transaction-scoped), so versions commit in order.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0));

-- name: revoke_apply
-- Revoke task ids (after revoke_lock, in the same transaction): waiting jobs are cancelled at once, live and unknown ids get a revoke row workers honour, finished ones are left alone; one row per id says which.
WITH input AS (
    SELECT DISTINCT unnest(%(ids)s::text[]) AS id
),
live AS (
    SELECT j.id, j.state, j.worker_id FROM {ns}.jobs AS j WHERE j.id IN (SELECT id FROM input)
),
finished AS (
    SELECT r.id, r.state FROM {ns}.results AS r
    WHERE r.id IN (SELECT id FROM input) AND r.id NOT IN (SELECT id FROM live)
),
recorded AS (
    INSERT INTO {ns}.revokes (task_id, reason, terminate, expires_at)
    SELECT id, %(reason)s, %(terminate)s, now() + make_interval(secs => %(expires_in)s)
    FROM input
    WHERE id NOT IN (SELECT id FROM finished)
    RETURNING task_id, version
),
cancelled AS (
    DELETE FROM {ns}.jobs AS j
    WHERE j.id IN (SELECT id FROM live) AND j.state IN ('queued', 'retried')
    RETURNING j.id, j.task, j.queue, j.priority, j.attempts, j.enqueued_at
),
stored AS (
    INSERT INTO {ns}.results (id, task, queue, priority, state, error, attempts, enqueued_at,
                              finished_at, expires_at)
    SELECT id, task, queue, priority, 'cancelled', %(error)s, attempts, enqueued_at, now(),
           now() + make_interval(secs => %(result_ttl)s)
    FROM cancelled
    ON CONFLICT (id) DO UPDATE
    SET task = excluded.task, queue = excluded.queue, priority = excluded.priority,
        state = excluded.state, result = NULL, error = excluded.error, traceback = NULL,
        attempts = excluded.attempts, enqueued_at = excluded.enqueued_at, started_at = NULL,
        finished_at = excluded.finished_at, worker_id = NULL, expires_at = excluded.expires_at
    RETURNING id
),
notified AS (
    SELECT pg_notify(%(done_channel)s,
                     CASE WHEN sum(octet_length(id) + 1) < 7900 THEN string_agg(id, ',') ELSE '*' END)
    FROM stored
    HAVING count(*) > 0
)
SELECT i.id AS task_id,
       CASE WHEN c.id IS NOT NULL THEN 'cancelled'
            WHEN l.id IS NOT NULL THEN 'revoked'
            WHEN f.id IS NOT NULL THEN 'finished'
            ELSE 'unknown' END AS outcome,
       CASE WHEN c.id IS NOT NULL THEN 'cancelled' ELSE coalesce(l.state, f.state) END AS state,
       CASE WHEN c.id IS NULL THEN l.worker_id END AS worker_id,
       rec.version
FROM input AS i
LEFT JOIN cancelled AS c ON c.id = i.id
LEFT JOIN live AS l ON l.id = i.id
LEFT JOIN finished AS f ON f.id = i.id
LEFT JOIN recorded AS rec ON rec.task_id = i.id
LEFT JOIN notified ON true
ORDER BY i.id;

-- name: revoke_since
-- Unexpired revokes newer than version %(after)s, oldest first (a worker catching up).
SELECT version, task_id, reason, terminate, expires_at
FROM {ns}.revokes
WHERE version > %(after)s AND expires_at > now()
ORDER BY version
LIMIT %(limit)s;

-- name: revoke_prune
-- Forget revokes past their expiry.
DELETE FROM {ns}.revokes WHERE expires_at < now();

-- name: queue_pause
-- Pause a queue for every worker of the namespace (kept until resumed, across restarts).
INSERT INTO {ns}.paused_queues AS p (queue, paused_by, reason)
VALUES (%(queue)s, %(paused_by)s, %(reason)s)
ON CONFLICT (queue) DO UPDATE
SET paused_by = coalesce(excluded.paused_by, p.paused_by), reason = coalesce(excluded.reason, p.reason)
RETURNING queue, paused_at, paused_by, reason;

-- name: queue_resume
-- Resume a paused queue and wake the workers that consume it; no row if it was not paused.
WITH resumed AS (
    DELETE FROM {ns}.paused_queues WHERE queue = %(queue)s
    RETURNING queue, paused_at, paused_by, reason
),
notified AS (
    SELECT pg_notify(%(jobs_channel)s, queue) FROM resumed
)
SELECT resumed.* FROM resumed LEFT JOIN notified ON true;

-- name: paused_list
-- Every paused queue.
SELECT queue, paused_at, paused_by, reason
FROM {ns}.paused_queues
ORDER BY queue;
