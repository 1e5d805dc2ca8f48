-- Schedule entries as users edit them (CLI and API). {ns} is the namespace schema.
-- Every edit bumps `version` and names the version it read (optimistic locking);
-- the statement-level trigger on the table wakes running beats.

-- name: schedule_list
-- Every entry with its run bookkeeping, by name.
SELECT name, task, spec, kwargs, queue, priority, jitter, enabled, expires_at, misfire,
       misfire_grace, description, next_run_at, last_run_at, total_runs, last_success_at,
       last_error, last_error_at, drift, version, created_at, updated_at, origin
FROM {ns}.schedules
ORDER BY name;

-- name: schedule_get
-- One entry by name.
SELECT name, task, spec, kwargs, queue, priority, jitter, enabled, expires_at, misfire,
       misfire_grace, description, next_run_at, last_run_at, total_runs, last_success_at,
       last_error, last_error_at, drift, version, created_at, updated_at, origin
FROM {ns}.schedules
WHERE name = %(name)s;

-- name: schedule_insert
-- Create an entry; returns nothing when the name is taken (the caller reports a conflict).
-- %(origin)s: 'code' for @app.periodic entries beat syncs, else 'store'.
INSERT INTO {ns}.schedules (name, task, spec, kwargs, queue, priority, jitter, enabled,
                            expires_at, misfire, misfire_grace, description, next_run_at, origin)
VALUES (%(name)s, %(task)s, %(spec)s::jsonb, %(kwargs)s::jsonb, %(queue)s, %(priority)s,
        %(jitter)s, %(enabled)s, %(expires_at)s, %(misfire)s, %(misfire_grace)s,
        %(description)s, %(next_run_at)s, %(origin)s)
ON CONFLICT (name) DO NOTHING
RETURNING version;

-- name: schedule_update
-- Replace an entry's definition if it is still at %(version)s; next_run_at changes only when
-- %(reschedule)s (the spec changed or the entry was re-enabled). Returns the new version.
UPDATE {ns}.schedules
SET task = %(task)s, spec = %(spec)s::jsonb, kwargs = %(kwargs)s::jsonb, queue = %(queue)s,
    priority = %(priority)s, jitter = %(jitter)s, enabled = %(enabled)s,
    expires_at = %(expires_at)s, misfire = %(misfire)s, misfire_grace = %(misfire_grace)s,
    description = %(description)s,
    next_run_at = CASE WHEN %(reschedule)s THEN %(next_run_at)s::timestamptz ELSE next_run_at END,
    version = version + 1,
    updated_at = now()
WHERE name = %(name)s AND version = %(version)s
RETURNING version;

-- name: schedule_set_enabled
-- Enable or disable an entry (at %(version)s when given); enabling sets its next fire time.
UPDATE {ns}.schedules
SET enabled = %(enabled)s,
    next_run_at = CASE WHEN %(enabled)s THEN %(next_run_at)s::timestamptz ELSE next_run_at END,
    version = version + 1,
    updated_at = now()
WHERE name = %(name)s AND (%(version)s::int IS NULL OR version = %(version)s::int)
RETURNING version;

-- name: schedule_delete
-- Delete an entry (at %(version)s when given); its fire records stay until pruned.
DELETE FROM {ns}.schedules
WHERE name = %(name)s AND (%(version)s::int IS NULL OR version = %(version)s::int)
RETURNING name;

-- name: schedule_fires_recent
-- The latest fires of one entry: fire time, the job it enqueued, when and by which beat.
SELECT schedule, fire_time, task_id, fired_at, beat_id, fence
FROM {ns}.schedule_fires
WHERE schedule = %(name)s
ORDER BY fire_time DESC
LIMIT %(limit)s;
