-- Beat's queries: find due schedules, fire them, prune old fire records. {ns} is the namespace schema.

-- name: beat_due
-- Enabled, unexpired entries whose next fire time has come, oldest first (the columns of
-- schedule_list: one row type, ScheduleRow, for both).
SELECT name, task, spec, kwargs, queue, priority, jitter, enabled, expires_at, misfire,
       misfire_grace, description, next_run_at, last_run_at, total_runs, last_success_at,
       last_error, last_error_at, drift, version, created_at, updated_at, origin
FROM {ns}.schedules
WHERE enabled AND next_run_at <= %(now)s AND (expires_at IS NULL OR expires_at > %(now)s)
ORDER BY next_run_at
LIMIT %(limit)s;

-- name: beat_next_due
-- When the next enabled, unexpired entry is due (NULL: none is).
SELECT min(next_run_at) AS next_due
FROM {ns}.schedules
WHERE enabled AND next_run_at IS NOT NULL AND (expires_at IS NULL OR expires_at > %(now)s);

-- name: beat_fire
-- Fire due entries in one autocommit statement, so a beat frozen mid-way holds no locks:
-- lock each entry (skipping those another beat holds) if it is unchanged since it was read
-- (version and next_run_at) and, when a fencing token is given, this beat still holds the
-- leader lease; record (schedule, fire time), whose primary key makes a second fire a no-op;
-- enqueue the job of each recorded fire; move next_run_at on. Returns the entries it advanced.
WITH input AS (
    SELECT *
    FROM unnest(%(name)s::text[], %(expected)s::timestamptz[], %(version)s::int[],
                %(fire)s::bool[], %(fire_time)s::timestamptz[], %(next_run_at)s::timestamptz[],
                %(error)s::text[], %(id)s::text[], %(task)s::text[], %(queue)s::text[],
                %(priority)s::smallint[], %(args)s::text[], %(headers)s::text[],
                %(max_retries)s::int[], %(countdown)s::float8[], %(visibility_timeout)s::int[],
                %(acks_late)s::bool[], %(unique_key)s::text[], %(unique_for)s::float8[])
        AS i(name, expected, version, fire, fire_time, next_run_at, error, id, task, queue,
             priority, args, headers, max_retries, countdown, visibility_timeout, acks_late,
             unique_key, unique_for)
),
fence AS (
    SELECT %(token)s::bigint IS NULL OR EXISTS (
        SELECT 1 FROM {ns}.locks
        WHERE key = %(lock_key)s AND owner = %(beat_id)s AND token = %(token)s::bigint
    ) AS ok
),
claimed AS (
    SELECT s.name
    FROM {ns}.schedules AS s
    JOIN input AS i ON i.name = s.name
    WHERE s.name = ANY(%(name)s::text[])
      AND s.version = i.version
      AND s.next_run_at = i.expected
      AND s.enabled
      AND (SELECT ok FROM fence)
    FOR UPDATE OF s SKIP LOCKED
),
fired AS (
    INSERT INTO {ns}.schedule_fires (schedule, fire_time, task_id, fired_at, beat_id, fence)
    SELECT i.name, i.fire_time, i.id, %(now)s, %(beat_id)s, %(token)s::bigint
    FROM input AS i
    JOIN claimed AS c ON c.name = i.name
    WHERE i.fire
    ON CONFLICT DO NOTHING
    RETURNING schedule
),
enqueued AS (
    INSERT INTO {ns}.jobs (id, task, queue, priority, args, headers, max_retries, not_before,
                           visibility_timeout, acks_late, unique_key, unique_until)
    SELECT i.id, i.task, i.queue, i.priority, i.args::jsonb, i.headers::jsonb, i.max_retries,
           now() + make_interval(secs => coalesce(i.countdown, 0)), i.visibility_timeout, i.acks_late,
           i.unique_key, now() + make_interval(secs => i.unique_for)
    FROM input AS i
    JOIN fired AS f ON f.schedule = i.name
    ON CONFLICT DO NOTHING
    RETURNING id
),
advanced AS (
    UPDATE {ns}.schedules AS s
    SET next_run_at = i.next_run_at,
        last_run_at = CASE WHEN f.schedule IS NULL THEN s.last_run_at ELSE %(now)s END,
        last_success_at = CASE WHEN f.schedule IS NULL THEN s.last_success_at ELSE %(now)s END,
        total_runs = s.total_runs + CASE WHEN f.schedule IS NULL THEN 0 ELSE 1 END,
        drift = CASE WHEN f.schedule IS NULL THEN s.drift
                     ELSE extract(epoch FROM %(now)s - i.fire_time)::float8 END,
        last_error = coalesce(i.error, s.last_error),
        last_error_at = CASE WHEN i.error IS NULL THEN s.last_error_at ELSE %(now)s END
    FROM input AS i
    JOIN claimed AS c ON c.name = i.name
    LEFT JOIN fired AS f ON f.schedule = i.name
    WHERE s.name = i.name
    RETURNING s.name, f.schedule IS NOT NULL AS fired
)
SELECT a.name, a.fired, CASE WHEN a.fired THEN i.id END AS task_id,
       (SELECT count(*) FROM enqueued) AS enqueued
FROM advanced AS a
JOIN input AS i ON i.name = a.name;

-- name: beat_fires_prune
-- Retention: forget fire records older than %(keep)s seconds, a bounded batch at a time
-- (entries only ever fire after their last recorded fire, so old records guard nothing).
DELETE FROM {ns}.schedule_fires
WHERE (schedule, fire_time) IN (
    SELECT schedule, fire_time FROM {ns}.schedule_fires
    WHERE fired_at < now() - make_interval(secs => %(keep)s)
    LIMIT %(limit)s
);
