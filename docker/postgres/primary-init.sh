#!/usr/bin/env bash
# First start of db-primary only (the image runs /docker-entrypoint-initdb.d/* once, on an
# empty data directory): the application role and database, pgvector, and a replication
# role that the replicas clone and stream from (docker/postgres/replica-entrypoint.sh).
set -o errexit
set -o pipefail
: "${SLUICE_DB_PASSWORD:?set POSTGRES_APP_PASSWORD in docker/.env}"
: "${REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD in docker/.env}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set app_password="$SLUICE_DB_PASSWORD" --set replication_password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE sluice LOGIN PASSWORD :'app_password';
CREATE DATABASE sluice OWNER sluice;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
-- The health endpoint reads each replica's lag (pg_stat_replication, pg_last_wal_*).
GRANT pg_monitor TO sluice;
\connect sluice
-- Created here by the superuser; the first migration's VectorExtension() is then a no-op.
CREATE EXTENSION IF NOT EXISTS vector;
SQL

# Streaming replication connections, password-checked (the image's own rule,
# `host all all all scram-sha-256`, does not cover the `replication` pseudo-database).
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
