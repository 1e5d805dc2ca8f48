-- Queries about the database itself, not about one namespace.

-- name: migrated_schemas
-- Schemas holding a stem_pg alembic version table (one per migrated namespace).
SELECT table_schema
FROM information_schema.tables
WHERE table_name = 'alembic_version'
  AND table_schema IN (
      SELECT table_schema FROM information_schema.tables WHERE table_name = 'jobs'
  )
ORDER BY table_schema;
