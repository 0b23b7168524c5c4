#!/usr/bin/env bash
# A local PostgreSQL 15 server for tests, benches and the demo: installs the packages when
# missing, initialises a cluster once and starts it if it is not running (all idempotent).
#
#   scripts/pg.sh start   start (or reuse) the server; prints its admin URL on stdout
#   scripts/pg.sh stop    stop it
#   scripts/pg.sh url     print the admin URL
#
# TAPEDECK_PG_DIR (default /tmp/tapedeck-pg) holds the cluster; TAPEDECK_PG_PORT (default
# 54329) is its port on 127.0.0.1. fsync is off: this server is for tests, not for data.
set -euo pipefail
BASE="${TAPEDECK_PG_DIR:-/tmp/tapedeck-pg}"
PORT="${TAPEDECK_PG_PORT:-54329}"
BIN=/usr/lib/postgresql/15/bin
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
    [ -x "$BIN/initdb" ] && return
    echo "pg.sh: installing postgresql-15 (apt)" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "pg.sh: $BIN/initdb is missing; run as root or: apt-get install postgresql-15" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >&2; }
}

start() {
    install
    if [ ! -f "$BASE/data/PG_VERSION" ]; then
        mkdir -p "$BASE"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$BASE"
        chmod 700 "$BASE"
        as_pg "$BIN/initdb" -D "$BASE/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$BASE/initdb.log" 2>&1 \
            || { cat "$BASE/initdb.log" >&2; exit 1; }
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$BASE/data" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $BASE -c fsync=off -c max_connections=200" \
            start >&2 || { tail -20 "$BASE/server.log" >&2; exit 1; }
    fi
    echo "$URL"
}

case "${1:-start}" in
    start) start ;;
    stop) as_pg "$BIN/pg_ctl" -D "$BASE/data" -m fast -w stop >&2 || true ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
