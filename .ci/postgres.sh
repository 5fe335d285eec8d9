#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: Debian's package, a fresh cluster on 127.0.0.1, trust auth.
#   bash .ci/postgres.sh start   # installs the package if missing, starts the server, prints its URL
#   bash .ci/postgres.sh stop
set -euo pipefail
PGPORT="${PGPORT:-55432}"
PGROOT="${PGROOT:-/tmp/finetuner-pg}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  { apt-get update -q && apt-get install -y -q postgresql; } >&2
fi
BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
# initdb refuses to run as root: the package's postgres user owns the cluster
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
  start)
    if ! as_pg "$BIN/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
      rm -rf "$PGROOT"; mkdir -p "$PGROOT"
      [ "$(id -u)" = 0 ] && chown postgres "$PGROOT"
      as_pg "$BIN/initdb" -D "$PGROOT/data" -U postgres -A trust -E UTF8 >/dev/null
      # fsync off: a test server; its data is thrown away after the run
      as_pg "$BIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
        -o "-h 127.0.0.1 -p $PGPORT -k $PGROOT -c fsync=off -c synchronous_commit=off -c max_connections=200" \
        start >/dev/null
    fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$PGROOT/data" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
