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
