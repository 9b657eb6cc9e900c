#!/bin/sh
# Entrypoint of firebox-postgres: on first start (an empty data directory) make a cluster with
# initdb, a login role POSTGRES_USER with POSTGRES_PASSWORD owning database POSTGRES_DB, and
# password (scram-sha-256) logins from any address; then run postgres in the foreground,
# listening on every address. Extra arguments go to postgres (e.g. -c max_connections=200).
set -eu
: "${POSTGRES_PASSWORD:?firebox-postgres: set POSTGRES_PASSWORD}"
user=${POSTGRES_USER:-firebox}
db=${POSTGRES_DB:-firebox}
case "$user$db" in
  *[!A-Za-z0-9_]*) echo "firebox-postgres: POSTGRES_USER and POSTGRES_DB take letters, digits and _" >&2; exit 1 ;;
esac

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "firebox-postgres: initdb $PGDATA (role $user, database $db)" >&2
  runuser -u postgres -- initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # Single-user mode: no listener yet, so nothing reaches the cluster before the role has its
  # password. The password goes in as an SQL literal (quotes doubled).
  password=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
  out=$(printf "CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %s OWNER %s;\n" \
    "$user" "$password" "$db" "$user" | runuser -u postgres -- postgres --single -D "$PGDATA" postgres 2>&1)
  if printf '%s' "$out" | grep -q 'ERROR'; then
    printf '%s\n' "$out" | grep 'ERROR' >&2
    rm -rf "${PGDATA:?}"/*
    exit 1
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' "$@"
