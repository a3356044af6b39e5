-- The two roles Jingzhun runs with on PostgreSQL (idempotent; run as a superuser).
--   jingzhun_owner: owns the database and every table, runs `migrate` (MIGRATION_DATABASE_URL).
--   jingzhun_app:   the web app and the workers (DATABASE_URL); not superuser, not owner,
--                   NOBYPASSRLS, so Row-Level Security binds every query it makes.
-- In production give both a password; CI's cluster uses trust authentication on loopback.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jingzhun_owner') THEN
    CREATE ROLE jingzhun_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jingzhun_app') THEN
    CREATE ROLE jingzhun_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
END
$$;
ALTER ROLE jingzhun_owner CREATEDB NOSUPERUSER NOBYPASSRLS;
ALTER ROLE jingzhun_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
SELECT 'CREATE DATABASE jingzhun OWNER jingzhun_owner'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'jingzhun')\gexec
GRANT CONNECT ON DATABASE jingzhun TO jingzhun_app;
