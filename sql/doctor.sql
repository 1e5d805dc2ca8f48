-- What `stem doctor` reads besides the xmin horizon (vacuum_horizon): the jobs table's
-- statistics, the namespace's indexes, and server-wide NOTIFY and connection headroom.
-- The decisions are stem_pg/core/doctor.py; the schema is a parameter ({ns} only for the workers table).

-- name: doctor_jobs_table
-- The jobs table's row counts, changes since its last analyze, last (auto)vacuum and
-- (auto)analyze (epoch seconds), its size, and the average width of a row by the planner's
-- statistics (NULL until analyzed).
SELECT s.n_live_tup AS live,
       s.n_dead_tup AS dead,
       s.n_mod_since_analyze AS modified_since_analyze,
       extract(epoch FROM s.last_vacuum)::float8 AS last_vacuum,
       extract(epoch FROM s.last_autovacuum)::float8 AS last_autovacuum,
       extract(epoch FROM s.last_analyze)::float8 AS last_analyze,
       extract(epoch FROM s.last_autoanalyze)::float8 AS last_autoanalyze,
       extract(epoch FROM now())::float8 AS now,
       pg_relation_size(s.relid) AS bytes,
       (SELECT sum(p.avg_width)::int FROM pg_stats AS p
        WHERE p.schemaname = s.schemaname AND p.tablename = s.relname) AS row_width
FROM pg_stat_all_tables AS s
WHERE s.schemaname = %(schema)s AND s.relname = 'jobs';

-- name: doctor_indexes
-- Every index of the namespace: its table, size, entries (-1: never vacuumed or analyzed),
-- whether it is valid (a failed CREATE INDEX CONCURRENTLY leaves an invalid one), and the
-- average width of its key columns by the planner's statistics.
SELECT i.relname::text AS name,
       t.relname::text AS table_name,
       pg_relation_size(i.oid) AS bytes,
       i.reltuples::float8 AS entries,
       x.indisvalid AS valid,
       (SELECT coalesce(sum(p.avg_width), 0)::int
        FROM pg_attribute AS a
        JOIN pg_stats AS p ON p.schemaname = n.nspname AND p.tablename = t.relname AND p.attname = a.attname
        WHERE a.attrelid = t.oid AND a.attnum = ANY (x.indkey)) AS key_width
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_class AS t ON t.oid = x.indrelid
JOIN pg_namespace AS n ON n.oid = t.relnamespace
WHERE n.nspname = %(schema)s
ORDER BY t.relname, i.relname;

-- name: doctor_live_workers
-- Worker processes of the namespace that run (not stopped, a heartbeat within stale_after
-- seconds), and the connections they may hold between them (a row of a worker older than
-- migration 0020 has no count: six, the most one held).
SELECT count(*)::int AS processes, coalesce(sum(coalesce(connections, 6)), 0)::int AS connections
FROM {ns}.workers
WHERE stopped_at IS NULL
  AND last_heartbeat_at > now() - make_interval(secs => %(stale_after)s);

-- name: doctor_server
-- The NOTIFY queue's fill (0 to 1), and the connections open against what the server allows
-- to roles that are not superusers.
SELECT pg_notification_queue_usage()::float8 AS notify_usage,
       (SELECT sum(numbackends)::int FROM pg_stat_database) AS connections,
       current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int AS max_connections;
