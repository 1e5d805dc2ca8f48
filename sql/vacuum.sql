-- The workers' vacuum of the jobs table (VacuumStore; the policy is stem_pg/core/vacuum.py).
-- {ns} is the namespace schema.

-- name: vacuum_dead_rows
-- Dead and live row versions of the jobs table, whether it is ours to vacuum now, and when it
-- was last vacuumed (epoch seconds). Only the table's owner (a member of its role) may vacuum
-- it; nor while a vacuum of it is under way (one we are allowed to see: same role, or
-- autovacuum for a superuser).
SELECT s.n_dead_tup AS dead,
       s.n_live_tup AS live,
       pg_has_role(c.relowner, 'USAGE')
       AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS v WHERE v.relid = s.relid)
           AS may_vacuum,
       extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum))::float8 AS last_vacuum
FROM pg_stat_all_tables AS s
JOIN pg_class AS c ON c.oid = s.relid
WHERE s.schemaname = %(schema)s AND s.relname = 'jobs';

-- name: vacuum_horizon
-- The oldest transaction id or snapshot that VACUUM of a table of this database must respect:
-- a session of this database (its backend_xmin or backend_xid; a walsender's is the standby's
-- hot_standby_feedback), a replication slot's xmin (a slot's catalog_xmin holds back only the
-- system catalogs) or a prepared transaction of this database. Vacuums (ours and autovacuum's)
-- are left out: the horizon ignores them. `since`: a time by which it certainly held it (a
-- session's last state change: the snapshot was taken by then, give or take the planning of a
-- statement just started). Sessions of other roles show pid, application_name and their xmin
-- but no state, times or query (pg_read_all_stats sees them). `limit`: NULL lists them all
-- (stem doctor), oldest first; `query`: the start of the session's current or last statement.
WITH holders (kind, pid, name, application_name, state, xmin, age, since, user_name, query) AS (
    SELECT 'session', a.pid, NULL::text, a.application_name, a.state, h.xid,
           extract(epoch FROM now() - a.xact_start)::float8,
           CASE WHEN a.backend_type = 'client backend' THEN extract(epoch FROM a.state_change)::float8 END,
           a.usename::text, left(a.query, 200)
    FROM pg_stat_activity AS a
    CROSS JOIN LATERAL (VALUES (a.backend_xmin), (a.backend_xid)) AS h (xid)
    WHERE h.xid IS NOT NULL
      AND a.pid <> pg_backend_pid()
      AND (a.datname = current_database() OR a.backend_type = 'walsender')
      AND a.backend_type <> 'autovacuum worker'
      AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_vacuum AS v WHERE v.pid = a.pid)
    UNION ALL
    SELECT 'slot', NULL, s.slot_name::text, NULL, CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
           s.xmin, NULL, NULL, NULL, NULL
    FROM pg_replication_slots AS s
    WHERE s.xmin IS NOT NULL
    UNION ALL
    SELECT 'prepared', NULL, p.gid, NULL, 'prepared', p.transaction,
           extract(epoch FROM now() - p.prepared)::float8, extract(epoch FROM p.prepared)::float8,
           p.owner::text, NULL
    FROM pg_prepared_xacts AS p
    WHERE p.database = current_database()
)
SELECT kind, xmin::text::bigint AS xmin, age(xmin) AS xmin_age, pid, name, application_name, state,
       age, since, user_name, query
FROM holders
ORDER BY age(xmin) DESC
LIMIT %(limit)s;

-- name: vacuum_lock
-- One worker at a time vacuums a namespace's jobs table; the others skip without a word
-- (a VACUUM that SKIP_LOCKED turns away writes a warning to the server log).
SELECT pg_try_advisory_lock(hashtextextended('stem_pg:vacuum:' || %(schema)s, 0));

-- name: vacuum_unlock
-- Release vacuum_lock, and give the session back its statement_timeout (vacuum_untimed).
SELECT pg_advisory_unlock(hashtextextended('stem_pg:vacuum:' || %(schema)s, 0)),
       set_config('statement_timeout',
                  coalesce(%(statement_timeout)s::text, current_setting('statement_timeout')), false);

-- name: vacuum_untimed
-- The vacuum is not cut short by a statement_timeout set for the role or database (autovacuum
-- ignores it too); returns the session's value for vacuum_unlock to restore.
SELECT current_setting('statement_timeout'), set_config('statement_timeout', '0', false);

-- name: vacuum_jobs
-- Remove the dead rows of claimed and finished jobs, index entries included (INDEX_CLEANUP ON:
-- the claim index must lose them even when they are few pages of a large table); skipped
-- when autovacuum holds the table.
VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) {ns}.jobs;
