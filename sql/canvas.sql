-- Canvas: chains, groups and chords. {ns} is the namespace schema. The
-- jobs_done trigger (migration 0004) advances them as their jobs finish.

-- name: canvas_create
-- Record a chain, group or chord and its members (in input order) in one statement.
WITH canvas AS (
    INSERT INTO {ns}.canvases (id, kind, size, pending, result_ttl)
    VALUES (%(id)s, %(kind)s, %(size)s, %(size)s, %(result_ttl)s)
)
INSERT INTO {ns}.canvas_members (canvas_id, position, task_id, task, job, result_arg, enqueued_at)
SELECT %(id)s, m.position, m.task_id, m.task, m.job::jsonb, m.result_arg,
       CASE WHEN m.job IS NULL THEN now() END
FROM unnest(%(position)s::int[], %(task_id)s::text[], %(task)s::text[], %(job)s::text[],
            %(result_arg)s::text[])
    AS m(position, task_id, task, job, result_arg);

-- name: canvas_status
-- One canvas with its members' states, in input order (the callback of a chord last).
SELECT c.id, c.kind, c.state, c.size, c.pending, c.failed, c.error, c.created_at, c.finished_at,
       coalesce(jsonb_agg(jsonb_build_object('position', m.position, 'task_id', m.task_id,
                                             'task', m.task, 'state', m.state, 'error', m.error)
                          ORDER BY m.position), '[]'::jsonb) AS members
FROM {ns}.canvases AS c
LEFT JOIN {ns}.canvas_members AS m ON m.canvas_id = c.id
WHERE c.id = %(id)s
GROUP BY c.id;

-- name: canvas_prune
-- Retention: finished canvases older than their result ttl go, members with them.
DELETE FROM {ns}.canvases
WHERE id IN (
    SELECT id FROM {ns}.canvases
    WHERE state <> 'running' AND finished_at < now() - make_interval(secs => result_ttl)
    LIMIT %(limit)s
);
