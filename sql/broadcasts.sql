-- Broadcast channels: one message row per publish, one fan-out row per live subscriber.
-- {ns} is the namespace schema. A subscriber is live while its worker row is not
-- stopped and has a heartbeat younger than %(live_for)s seconds.

-- name: broadcast_publish
-- Publish one message and fan it out to the channel's live subscribers, with one wake-up; an already published task id is left alone (no row returned).
WITH msg AS (
    INSERT INTO {ns}.broadcast_messages (task_id, channel, task, args, headers, delivery, durable,
                                         max_retries, not_before, expires_at)
    VALUES (%(task_id)s, %(channel)s, %(task)s, %(args)s::jsonb, %(headers)s::jsonb, %(delivery)s,
            %(durable)s, %(max_retries)s,
            coalesce(%(eta)s::timestamptz,
                     now() + make_interval(secs => coalesce(%(countdown)s::float8, 0))),
            coalesce(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in)s::float8)))
    ON CONFLICT (task_id) DO NOTHING
    RETURNING id, channel, not_before
),
fan AS (
    INSERT INTO {ns}.broadcast_fanout (message_id, subscriber, not_before)
    SELECT msg.id, s.worker_id, msg.not_before
    FROM msg
    JOIN {ns}.broadcast_subscriptions AS s ON s.channel = msg.channel
    JOIN {ns}.workers AS w ON w.id = s.worker_id
    WHERE w.stopped_at IS NULL
      AND w.last_heartbeat_at > now() - make_interval(secs => %(live_for)s)
    RETURNING subscriber
)
SELECT msg.id AS message_id, (SELECT count(*) FROM fan)::int AS subscribers,
       pg_notify(%(wake_channel)s, msg.channel) AS notified
FROM msg;

-- name: broadcast_subscribe
-- Make a worker's subscriptions exactly %(channels)s; a channel it joins starts from now, except durable messages still stored, which it receives too.
WITH dropped AS (
    DELETE FROM {ns}.broadcast_subscriptions
    WHERE worker_id = %(worker_id)s AND channel <> ALL(%(channels)s::text[])
    RETURNING channel
),
abandoned AS (
    UPDATE {ns}.broadcast_fanout AS f
    SET state = 'cancelled', finished_at = now(), error = 'unsubscribed before delivery'
    FROM dropped, {ns}.broadcast_messages AS m
    WHERE f.subscriber = %(worker_id)s AND f.message_id = m.id AND m.channel = dropped.channel
      AND f.state IN ('pending', 'running', 'delivered')
    RETURNING f.message_id
),
joined AS (
    INSERT INTO {ns}.broadcast_subscriptions (channel, worker_id)
    SELECT DISTINCT channel, %(worker_id)s FROM unnest(%(channels)s::text[]) AS c(channel)
    ON CONFLICT DO NOTHING
    RETURNING channel
),
replayed AS (
    INSERT INTO {ns}.broadcast_fanout (message_id, subscriber, not_before)
    SELECT m.id, %(worker_id)s, m.not_before
    FROM {ns}.broadcast_messages AS m
    JOIN joined ON joined.channel = m.channel
    WHERE m.durable AND (m.expires_at IS NULL OR m.expires_at > now())
    ON CONFLICT DO NOTHING
    RETURNING message_id
)
SELECT (SELECT count(*) FROM joined)::int AS joined,
       (SELECT count(*) FROM dropped)::int AS dropped,
       (SELECT count(*) FROM abandoned)::int AS abandoned,
       (SELECT count(*) FROM replayed)::int AS replayed;

-- name: broadcast_recover
-- At start-up, what this worker id claimed in an earlier life and never acked: at-least-once rows run again, at-most-once rows are closed.
UPDATE {ns}.broadcast_fanout
SET state = CASE WHEN state = 'running' THEN 'pending' ELSE 'failed' END,
    not_before = now(),
    finished_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
    error = CASE WHEN state = 'running'
                 THEN 'worker stopped before acking; delivered again'
                 ELSE 'worker stopped before acking; at-most-once, not delivered again' END
WHERE subscriber = %(worker_id)s AND state IN ('running', 'delivered')
RETURNING message_id, state;

-- name: broadcast_claim
-- Take up to %(limit)s due messages for one subscriber, oldest first: at-least-once ones become 'running' (redelivered if never acked), at-most-once ones 'delivered' before they run.
WITH picked AS MATERIALIZED (
    SELECT message_id
    FROM {ns}.broadcast_fanout
    WHERE subscriber = %(worker_id)s AND state = 'pending' AND not_before <= now()
    ORDER BY message_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {ns}.broadcast_fanout AS f
SET state = CASE WHEN m.delivery = 'at-most-once' THEN 'delivered' ELSE 'running' END,
    attempts = f.attempts + 1,
    started_at = now()
FROM picked, {ns}.broadcast_messages AS m
WHERE f.subscriber = %(worker_id)s AND f.message_id = picked.message_id AND m.id = f.message_id
RETURNING m.id AS message_id, m.task_id, m.channel, m.task, m.args, m.headers, m.delivery,
          f.attempts, m.max_retries, m.expires_at, m.published_at;

-- name: broadcast_ack
-- Record what a subscriber's handlers did: a final state, or 'pending' again after a delay (a retry, or released at shutdown without counting the attempt); tells result waiters.
WITH acked AS (
    UPDATE {ns}.broadcast_fanout AS f
    SET state = i.state,
        result = i.result::jsonb,
        error = coalesce(i.error, f.error),
        finished_at = CASE WHEN i.state = 'pending' THEN NULL ELSE now() END,
        not_before = now() + make_interval(secs => i.delay),
        attempts = f.attempts - CASE WHEN i.released THEN 1 ELSE 0 END
    FROM unnest(%(message_id)s::bigint[], %(state)s::text[], %(result)s::text[], %(error)s::text[],
                %(delay)s::float8[], %(released)s::bool[])
        AS i(message_id, state, result, error, delay, released)
    WHERE f.subscriber = %(worker_id)s AND f.message_id = i.message_id
      AND f.state IN ('running', 'delivered')
    RETURNING f.message_id
)
SELECT count(*)::int AS acked,
       pg_notify(%(done_channel)s,
                 CASE WHEN sum(octet_length(m.task_id) + 1) < 7900 THEN string_agg(m.task_id, ',') ELSE '*' END)
FROM acked
JOIN {ns}.broadcast_messages AS m ON m.id = acked.message_id
HAVING count(*) > 0;

-- name: broadcast_gc
-- Subscribers that are gone (stopped, or no heartbeat for %(live_for)s seconds) lose their subscriptions, and their undelivered rows are cancelled so they stop holding messages back.
WITH gone AS (
    DELETE FROM {ns}.broadcast_subscriptions AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM {ns}.workers AS w
        WHERE w.id = s.worker_id AND w.stopped_at IS NULL
          AND w.last_heartbeat_at > now() - make_interval(secs => %(live_for)s)
    )
    RETURNING s.worker_id
),
dropped AS (
    UPDATE {ns}.broadcast_fanout AS f
    SET state = 'cancelled', finished_at = now(), error = 'subscriber gone before delivery'
    WHERE f.state IN ('pending', 'running', 'delivered')
      AND NOT EXISTS (
          SELECT 1 FROM {ns}.workers AS w
          WHERE w.id = f.subscriber AND w.stopped_at IS NULL
            AND w.last_heartbeat_at > now() - make_interval(secs => %(live_for)s)
      )
    RETURNING f.message_id
)
SELECT (SELECT count(*) FROM gone)::int AS subscriptions, (SELECT count(*) FROM dropped)::int AS deliveries;

-- name: broadcast_prune
-- Delete messages every subscriber is done with, once older than %(keep)s seconds (%(durable_keep)s for durable channels); their fan-out rows go with them.
DELETE FROM {ns}.broadcast_messages
WHERE id IN (
    SELECT m.id
    FROM {ns}.broadcast_messages AS m
    WHERE m.published_at < now() - make_interval(
              secs => CASE WHEN m.durable THEN %(durable_keep)s::float8 ELSE %(keep)s::float8 END)
      AND NOT EXISTS (
          SELECT 1 FROM {ns}.broadcast_fanout AS f
          WHERE f.message_id = m.id AND f.state IN ('pending', 'running', 'delivered')
      )
    ORDER BY m.id
    LIMIT %(limit)s
);

-- name: broadcast_deliveries_of
-- The deliveries of one published message (the broadcast_deliveries view, by task id).
SELECT message_id, task_id, channel, task, delivery, worker_id, state, attempts, published_at,
       started_at, finished_at, error, result
FROM {ns}.broadcast_deliveries
WHERE task_id = %(task_id)s
ORDER BY worker_id;
