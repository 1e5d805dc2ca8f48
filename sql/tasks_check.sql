-- `stem tasks check`: what is waiting to run, by task name and by the argument names it
-- carries (binding a call to a signature depends on the names only, never the values), so
-- a backlog of a million jobs comes back as a handful of rows. {ns} is the namespace schema.

-- name: tasks_check_sources
-- One row per (source, task, argument names, result argument): how many wait. Sources:
-- queued and scheduled jobs (not started, or waiting for a retry), enabled beat schedules
-- that have not expired, canvas members planned but not enqueued yet (result_arg: the
-- parameter that will receive the previous result), and running or suspended workflow runs.
SELECT source, task, names, result_arg, count(*)::int AS waiting
FROM (
    SELECT CASE WHEN not_before > now() THEN 'scheduled' ELSE 'queued' END AS source, task,
           ARRAY(SELECT jsonb_object_keys(args) ORDER BY 1) AS names, NULL::text AS result_arg
    FROM {ns}.jobs
    WHERE state IN ('queued', 'retried')
    UNION ALL
    SELECT 'schedule', task, ARRAY(SELECT jsonb_object_keys(kwargs) ORDER BY 1), NULL
    FROM {ns}.schedules
    WHERE enabled AND (expires_at IS NULL OR expires_at > now())
    UNION ALL
    SELECT 'canvas', m.task,
           ARRAY(SELECT jsonb_object_keys(coalesce(m.job -> 'args', '{{}}'::jsonb)) ORDER BY 1),
           m.result_arg
    FROM {ns}.canvas_members AS m
    JOIN {ns}.canvases AS c ON c.id = m.canvas_id
    WHERE c.state = 'running' AND m.state = 'pending' AND m.job IS NOT NULL AND m.enqueued_at IS NULL
    UNION ALL
    SELECT 'workflow', workflow, ARRAY(SELECT jsonb_object_keys(params) ORDER BY 1), NULL
    FROM {ns}.wf_runs
    WHERE status IN ('running', 'suspended')
) AS waiting
GROUP BY source, task, names, result_arg
ORDER BY task, source;
