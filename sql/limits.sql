-- Rate and concurrency limits (LimitStore): the limited claim and the limiter rows. {ns} is the namespace schema.

-- name: job_claim_limited
-- Lease up to %(limit)s due jobs of one queue with limits, skipping those over a limit (claim_limited_v2, migration 0016).
-- A row with a NULL id carries a note instead of a job, a JSON object: "wait", the seconds
-- until a rate limit has a token; "busy", another claim held a limiter; "missing", the
-- limits whose row is gone.
SELECT id, task, queue, priority, args, headers, attempts, max_retries, expires_at,
       visibility_timeout, acks_late, signature, note
FROM {ns}.claim_limited_v2(%(queue)s, %(limit)s, %(worker_id)s, %(token)s::uuid,
                           %(lease_seconds)s, %(spec)s::jsonb, %(tasks)s::text[]);

-- name: limiters_register
-- A worker declares its limits at start and on each maintenance pass: a limit's row is
-- made (a full bucket) or its settings updated; its tokens and its groups' rows stay.
INSERT INTO {ns}.limiters (kind, scope, key, per_second, burst, concurrency, key_field,
                           fail_open, tokens)
SELECT r.kind, r.scope, '', r.per_second, r.burst, r.concurrency, r.key_field, r.fail_open, r.burst
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS r(kind text, scope text, per_second float8, burst float8, concurrency int,
         key_field text, fail_open bool)
ON CONFLICT (kind, scope, key) DO UPDATE
SET per_second = excluded.per_second, burst = excluded.burst,
    concurrency = excluded.concurrency, key_field = excluded.key_field,
    fail_open = excluded.fail_open,
    tokens = least(limiters.tokens, excluded.burst);

-- name: limiters_groups_update
-- A keyed limit's group rows follow its settings (a worker started with new ones).
UPDATE {ns}.limiters AS g
SET per_second = l.per_second, burst = l.burst, concurrency = l.concurrency,
    fail_open = l.fail_open, tokens = least(g.tokens, l.burst)
FROM {ns}.limiters AS l
WHERE l.key = '' AND g.key <> '' AND g.kind = l.kind AND g.scope = l.scope
  AND (g.per_second, g.burst, g.concurrency, g.fail_open)
      IS DISTINCT FROM (l.per_second, l.burst, l.concurrency, l.fail_open);

-- name: limiter_state
-- Every limiter row with its tokens now and its running and ready jobs (the limiter_state view).
SELECT kind, scope, key, per_second, burst, concurrency, key_field, fail_open, tokens,
       running::int, ready::int
FROM {ns}.limiter_state
ORDER BY scope, kind, key;

-- name: limited_wake
-- Tell the workers of these queues that a limited job finished: a slot may be free.
SELECT pg_notify(%(channel)s, q) FROM unnest(%(queues)s::text[]) AS q;

-- name: limiters_prune
-- Forget idle group rows (key <> ''): a bucket full again, or a concurrency row, untouched for a minute.
-- A group's row is made again from its limit's row on first use, as it was (a full
-- bucket; a concurrency limit counts running jobs, not rows), so this changes nothing
-- but the table's size when a key's values come and go (tenants).
DELETE FROM {ns}.limiters
WHERE (kind, scope, key) IN (
    SELECT kind, scope, key FROM {ns}.limiters
    WHERE key <> '' AND refilled_at < now() - interval '1 minute'
      AND (kind = 'concurrency'
           OR coalesce(tokens, burst) + per_second * extract(epoch FROM now() - refilled_at) >= burst)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);
