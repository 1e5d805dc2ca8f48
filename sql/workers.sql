-- The workers table: who is consuming, from where, and when it was last alive.

-- name: worker_register
-- A worker announces itself at start-up, and on the heartbeat topic (unless payload is NULL).
WITH registered AS (
    INSERT INTO {ns}.workers (id, host, pid, queues, concurrency, tasks, connections)
    VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, %(tasks)s::jsonb, %(connections)s)
    ON CONFLICT (id) DO UPDATE
    SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
        concurrency = excluded.concurrency, tasks = excluded.tasks,
        connections = excluded.connections, started_at = now(),
        last_heartbeat_at = now(), stopped_at = NULL
)
SELECT pg_notify(%(channel)s, %(payload)s::text) WHERE %(payload)s::text IS NOT NULL;

-- name: worker_heartbeat
-- A worker is still alive: its row, and the same news on the heartbeat topic.
WITH beat AS (
    UPDATE {ns}.workers SET last_heartbeat_at = now() WHERE id = %(id)s
)
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: worker_stopped
-- A worker shut down cleanly: its row, and the heartbeat topic.
WITH stopped AS (
    UPDATE {ns}.workers SET stopped_at = now(), last_heartbeat_at = now() WHERE id = %(id)s
)
SELECT pg_notify(%(channel)s, %(payload)s);

-- name: worker_prune
-- Forget workers whose last sign of life (a heartbeat, or the clean stop) is older than the
-- retention: stopped ones, and crashed ones that never came back.
DELETE FROM {ns}.workers
WHERE last_heartbeat_at < now() - make_interval(secs => %(retention)s);

-- name: worker_list
-- Every known worker with its liveness: alive, stale (missed heartbeats) or gone.
SELECT id, host, pid, queues, concurrency, started_at, last_heartbeat_at, stopped_at,
       CASE
           WHEN stopped_at IS NOT NULL THEN 'gone'
           WHEN last_heartbeat_at > now() - make_interval(secs => %(stale_after)s) THEN 'alive'
           ELSE 'stale'
       END AS status
FROM {ns}.workers
ORDER BY started_at DESC;

-- name: worker_task_options
-- One task's enqueue options as the live worker that started last registered them
-- (stem tasks enqueue without --app); no row if no live worker registers the task.
SELECT tasks -> %(task)s AS options
FROM {ns}.workers
WHERE stopped_at IS NULL
  AND last_heartbeat_at > now() - make_interval(secs => %(stale_after)s)
  AND tasks ? %(task)s
ORDER BY started_at DESC
LIMIT 1;
