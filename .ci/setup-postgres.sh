#!/usr/bin/env bash
# PostgreSQL + PostGIS for dcm's store tests, on a fresh Debian machine, as root.
#
# Installs the server and PostGIS (if missing), starts the cluster without systemd,
# creates the role `dcm` and the database `dcm_test` (owned by dcm, with the postgis
# extension). Safe to run twice. Progress goes to stderr; stdout is one line to source:
#
#   DCM_TEST_POSTGRES_URL=postgresql://dcm:dcm@127.0.0.1:5432/dcm_test
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

DB_NAME=${DCM_TEST_DB:-dcm_test}
DB_USER=${DCM_TEST_DB_USER:-dcm}
DB_PASSWORD=${DCM_TEST_DB_PASSWORD:-dcm}

log() { echo "setup-postgres: $*" >&2; }

pg_major() { ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(pg_major)" ] || [ ! -x "/usr/lib/postgresql/$(pg_major)/bin/postgres" ]; then
    log "installing postgresql"
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
PG=$(pg_major)
if [ ! -f "/usr/share/postgresql/$PG/extension/postgis.control" ]; then
    log "installing postgresql-$PG-postgis-3"
    apt-get install -y -qq "postgresql-$PG-postgis-3" >&2 || {
        apt-get update -qq >&2
        apt-get install -y -qq "postgresql-$PG-postgis-3" >&2
    }
fi

# The Debian package normally creates the cluster "main"; create it if a slim image did not.
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$PG main"; then
    log "creating cluster $PG/main"
    pg_createcluster "$PG" main >&2
fi
PORT=$(pg_lsclusters -h | awk -v v="$PG" '$1==v && $2=="main" {print $3}')
if ! pg_lsclusters -h | awk -v v="$PG" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting cluster $PG/main on port $PORT"
    # No systemd here: pg_ctlcluster runs pg_ctl as the cluster owner directly.
    pg_ctlcluster --skip-systemctl-redirect "$PG" main start >&2
fi
for _ in $(seq 1 30); do
    runuser -u postgres -- pg_isready -q -p "$PORT" && break
    sleep 1
done

psql_admin() { runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -p "$PORT" "$@"; }

psql_admin -d postgres >&2 <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')\gexec
SQL
psql_admin -d "$DB_NAME" -c "CREATE EXTENSION IF NOT EXISTS postgis" >&2
log "ready: database $DB_NAME with $(psql_admin -d "$DB_NAME" -tAc 'SELECT postgis_lib_version()' ) PostGIS"

echo "DCM_TEST_POSTGRES_URL=postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB_NAME"
