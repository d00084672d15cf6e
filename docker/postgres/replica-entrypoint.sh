#!/usr/bin/env bash
# A streaming replica of the primary. On first start (empty data directory) it clones the
# primary with `pg_basebackup -R` (writes standby.signal and primary_conninfo) through its
# own replication slot, so the primary keeps the WAL this replica has not received yet;
# then it starts Postgres through the image's own entrypoint, which skips initdb because
# the data directory is no longer empty.
set -o errexit
set -o nounset
set -o pipefail
: "${PRIMARY_HOST:?}" "${REPLICATION_SLOT:?}" "${REPLICATION_PASSWORD:?}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA" "$(dirname "$PGDATA")"
  chmod 0700 "$PGDATA"
  export PGPASSWORD="$REPLICATION_PASSWORD"
  until pg_isready --quiet --host "$PRIMARY_HOST" --username replicator --dbname postgres; do
    echo "replica: waiting for the primary at $PRIMARY_HOST"
    sleep 2
  done
  # A slot left behind by an earlier replica of this name whose volume was lost: drop it
  # (only when no one streams from it); pg_basebackup --create-slot makes it anew.
  gosu postgres psql --no-psqlrc -v ON_ERROR_STOP=1 --host "$PRIMARY_HOST" --username replicator \
    --dbname postgres --set slot="$REPLICATION_SLOT" --quiet <<'SQL'
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
 WHERE slot_name = :'slot' AND NOT active;
SQL
  echo "replica: cloning $PRIMARY_HOST with pg_basebackup -R into $PGDATA (slot $REPLICATION_SLOT)"
  gosu postgres pg_basebackup --host "$PRIMARY_HOST" --username replicator --pgdata "$PGDATA" \
    --write-recovery-conf --wal-method stream --checkpoint fast \
    --create-slot --slot "$REPLICATION_SLOT" --progress
  unset PGPASSWORD
fi

exec docker-entrypoint.sh "$@"
