#!/usr/bin/env bash
# A local ClickHouse server for tests, benches and the demo: installs Debian's clickhouse-server
# when missing, writes a throwaway config and starts it if it is not answering (all idempotent).
#
#   scripts/ch.sh start   start (or reuse) the server; prints its URL on stdout
#   scripts/ch.sh stop    stop it
#   scripts/ch.sh url     print the URL
#
# TAPEDECK_CH_DIR (default /tmp/tapedeck-ch) holds the config, data and logs;
# TAPEDECK_CH_HTTP_PORT (default 18123) and TAPEDECK_CH_TCP_PORT (default 19000) are its ports
# on 127.0.0.1. Tests that stop a server on purpose run their own instance with other values of
# these three, never the shared one. The server is for tests, not for data.
set -euo pipefail
BASE="${TAPEDECK_CH_DIR:-/tmp/tapedeck-ch}"
HTTP_PORT="${TAPEDECK_CH_HTTP_PORT:-18123}"
TCP_PORT="${TAPEDECK_CH_TCP_PORT:-19000}"
BIN=/usr/sbin/clickhouse-server
URL="clickhouse://127.0.0.1:$HTTP_PORT/default"

install() {
    [ -x "$BIN" ] && return
    echo "ch.sh: installing clickhouse-server (apt)" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "ch.sh: $BIN is missing; run as root or: apt-get install clickhouse-server" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >&2; }
}

ping() {
    # bash's /dev/tcp: no curl needed. `GET /ping` answers `Ok.`.
    { exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT"; } 2>/dev/null || return 1
    printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    local reply
    reply=$(timeout 2 cat <&3 || true)
    exec 3<&-
    [[ "$reply" == *"Ok."* ]]
}

configure() {
    mkdir -p "$BASE/data/" "$BASE/tmp/" "$BASE/log"
    cat >"$BASE/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$BASE/log/server.log</log>
        <errorlog>$BASE/log/error.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <http_port>$HTTP_PORT</http_port>
    <tcp_port>$TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$BASE/data/</path>
    <tmp_path>$BASE/tmp/</tmp_path>
    <users_config>$BASE/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
    cat >"$BASE/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start() {
    install
    if ping; then
        echo "$URL"
        return
    fi
    configure
    # The pid is ours to record: 18.16 writes --pid-file only when it daemonizes itself.
    (cd "$BASE" && exec setsid "$BIN" --config-file="$BASE/config.xml" \
        </dev/null >"$BASE/log/stdout.log" 2>&1) &
    echo $! >"$BASE/server.pid"
    for _ in $(seq 1 150); do
        if ping; then
            echo "$URL"
            return
        fi
        sleep 0.1
    done
    echo "ch.sh: clickhouse-server did not answer on 127.0.0.1:$HTTP_PORT" >&2
    tail -20 "$BASE/log/error.log" "$BASE/log/stdout.log" >&2 2>/dev/null || true
    exit 1
}

stop() {
    [ -f "$BASE/server.pid" ] || return 0
    local pid
    pid=$(cat "$BASE/server.pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$BASE/server.pid"
}

case "${1:-start}" in
    start) start ;;
    stop) stop >&2 ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
