-- Queries about the database itself, not about one namespace.

-- name: server_version
-- The server's version string, as `stem health` reports it.
SHOW server_version;

-- name: migrated_schemas
-- Schemas holding a stem_pg alembic version table (one per migrated namespace).
SELECT table_schema AS schema
FROM information_schema.tables
WHERE table_name = 'alembic_version'
  AND table_schema IN (
      SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'
  )
ORDER BY table_schema;

-- name: schema_revision
-- The revision a schema listed by migrated_schemas is at ({ns} is that schema, whatever its name).
SELECT version_num AS revision FROM {ns}.alembic_version;

-- name: version_table
-- Whether a schema has an alembic version table, and whether this role may read it (a worker role need not).
SELECT c.oid IS NOT NULL AS present, coalesce(has_table_privilege(c.oid, 'SELECT'), false) AS readable
FROM (SELECT to_regclass(quote_ident(%(schema)s::text) || '.alembic_version')::oid AS oid) AS c;

-- name: in_recovery
-- Whether the server is a standby (in recovery): it answers reads, refuses writes and LISTEN.
SELECT pg_is_in_recovery() AS in_recovery;
