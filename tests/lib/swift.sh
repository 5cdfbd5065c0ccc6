#!/usr/bin/env bash
# swift.sh - an all-in-one OpenStack Swift with its S3 API, on loopback, for tests.
#
#   swift.sh start DIR PORT     start account/container/object servers and a proxy with
#                               s3api+tempauth on 127.0.0.1:PORT; wait until all answer
#                               /healthcheck (deadline SWIFT_START_TIMEOUT, default 120 s)
#   swift.sh stop DIR           stop everything started from DIR (pid files in DIR/run)
#   swift.sh stop-proxy DIR     stop only the proxy (simulates an S3 outage)
#   swift.sh start-proxy DIR    start the proxy again and wait until it is ready
#   swift.sh status DIR         exit 0 if the proxy answers /healthcheck
#
# Ports: proxy PORT, object PORT+1, container PORT+2, account PORT+3 (all 127.0.0.1).
# Every config file, ring, pid file, log and all data live in DIR; swift_dir=DIR so
# /etc/swift is never read. S3 credentials: access key "test:tester", secret "testing",
# region us-east-1, path-style addressing. Logs: DIR/log/<server>.log.
set -euo pipefail

die() { echo "swift.sh: $*" >&2; exit 1; }

SERVERS=(account container object proxy)

usage() {
    die "usage: swift.sh start DIR PORT | stop DIR | stop-proxy DIR | start-proxy DIR | status DIR"
}

port_of() { # port_of NAME -> port for that server
    local base
    base=$(cat "$DIR/run/port")
    case $1 in
        proxy) echo "$base" ;;
        object) echo $((base + 1)) ;;
        container) echo $((base + 2)) ;;
        account) echo $((base + 3)) ;;
    esac
}

port_busy() { # true if something accepts connections on 127.0.0.1:$1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

healthy() { # healthy PORT -> true if GET /healthcheck answers 200 OK (bash only, no curl)
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
        IFS= read -r status <&3 || exit 1
        [[ $status == "HTTP/1."?" 200"* ]] || exit 1
        body=$(cat <&3) && [[ $body == *OK ]]
    ' _ "$1" 2>/dev/null
}

alive() { # alive PID: the process exists and is not a zombie
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# pid_of NAME: prints the recorded pid if that process is alive and really ours
# (its command line names our config file); removes a stale pid file otherwise.
pid_of() {
    local f="$DIR/run/$1.pid" pid cmd
    [[ -f $f ]] || return 1
    pid=$(cat "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
        if [[ $cmd == *"$DIR/$1-server.conf"* ]]; then
            echo "$pid"
            return 0
        fi
    fi
    rm -f "$f"
    return 1
}

write_configs() {
    local p name
    mkdir -p "$DIR/devices/d1" "$DIR/run" "$DIR/log"
    cat >"$DIR/swift.conf" <<EOF
[swift-hash]
swift_hash_path_prefix = bottomlessfs-test
swift_hash_path_suffix = bottomlessfs-test

[storage-policy:0]
name = Policy-0
default = yes
EOF
    cat >"$DIR/memcache.conf" <<EOF
[memcache]
memcache_servers = 127.0.0.1:11211
EOF
    # workers = 0: each server serves in its own process. With workers = 1 a parent process
    # also waits for its worker by polling waitpid 100 times a second: the four parents took
    # about 9% of a vCPU while the servers were idle, from the tests and the benchmarks
    # sharing this machine's 2 vCPUs with them (1 tick in 3 s with workers = 0).
    for name in account container object; do
        p=$(port_of "$name")
        cat >"$DIR/$name-server.conf" <<EOF
[DEFAULT]
devices = $DIR/devices
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = $p
workers = 0
user = root
swift_dir = $DIR
log_name = $name-server
log_level = INFO

[pipeline:main]
pipeline = healthcheck $name-server

[app:$name-server]
use = egg:swift#$name

[filter:healthcheck]
use = egg:swift#healthcheck

[$name-replicator]
[$name-auditor]
EOF
    done
    cat >"$DIR/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $(port_of proxy)
workers = 0
user = root
swift_dir = $DIR
log_name = proxy-server
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:11211

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
EOF
}

build_ring() { # build_ring NAME: DIR/NAME.ring.gz with one device on that server's port
    local b="$DIR/$1.builder" rc=0
    rm -f "$b" "$DIR/$1.ring.gz"
    swift-ring-builder "$b" create 10 1 1 >/dev/null
    swift-ring-builder "$b" add "r1z1-127.0.0.1:$(port_of "$1")/d1" 100 >/dev/null
    swift-ring-builder "$b" rebalance >/dev/null || rc=$?
    # exit status 1 is only a warning (e.g. balance could be better)
    ((rc <= 1)) || return "$rc"
    [[ -f $DIR/$1.ring.gz ]]
}

build_rings() {
    local name pids=() pid ok=1
    for name in account container object; do
        build_ring "$name" >"$DIR/log/ring-$name.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
    if ((!ok)); then
        cat "$DIR"/log/ring-*.log >&2
        die "swift-ring-builder failed"
    fi
    rm -rf "$DIR/backups"
}

start_server() { # start_server NAME: launch it in its own session, record its pid
    local name=$1 p
    p=$(port_of "$name")
    if pid_of "$name" >/dev/null; then
        return 0
    fi
    if port_busy "$p"; then
        die "port 127.0.0.1:$p (for $name server) is already in use"
    fi
    # setsid: own process group, so stop can signal the server and its worker together,
    # and a Ctrl-C on the terminal does not reach it (the caller's cleanup stops it).
    setsid "swift-$name-server" "$DIR/$name-server.conf" -v \
        </dev/null >>"$DIR/log/$name.log" 2>&1 &
    echo $! >"$DIR/run/$name.pid"
}

wait_ready() { # wait_ready NAME...: poll /healthcheck of each until OK or deadline
    local deadline=$((SECONDS + ${SWIFT_START_TIMEOUT:-120})) name
    for name in "$@"; do
        until healthy "$(port_of "$name")"; do
            if ! pid_of "$name" >/dev/null; then
                echo "swift.sh: $name server exited during startup; its log:" >&2
                tail -n 30 "$DIR/log/$name.log" >&2 || true
                return 1
            fi
            if ((SECONDS >= deadline)); then
                echo "swift.sh: $name server not ready on port $(port_of "$name")" \
                    "after ${SWIFT_START_TIMEOUT:-120} s; its log:" >&2
                tail -n 30 "$DIR/log/$name.log" >&2 || true
                return 1
            fi
            sleep 0.2
        done
    done
}

stop_server() { # stop_server NAME: TERM its process group, KILL after 10 s
    local name=$1 pid deadline
    pid=$(pid_of "$name") || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/run/$name.pid"
    # the listening socket must be gone before we report "stopped"
    deadline=$((SECONDS + 10))
    while port_busy "$(port_of "$name")" && ((SECONDS < deadline)); do sleep 0.1; done
}

cmd_start() {
    local port=$1 name
    [[ $port =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65532)) ||
        die "bad PORT '$port' (need 1024..65532; PORT..PORT+3 are used)"
    command -v swift-proxy-server >/dev/null ||
        die "swift-proxy-server not found: run 'make deps' (packages swift-proxy swift-object swift-container swift-account)"
    mkdir -p "$DIR/run"
    # a previous run from this DIR that is still alive is stopped first
    if [[ -f $DIR/run/port ]]; then
        for name in "${SERVERS[@]}"; do stop_server "$name"; done
    fi
    echo "$port" >"$DIR/run/port"
    for name in "${SERVERS[@]}"; do
        if port_busy "$(port_of "$name")"; then
            die "port 127.0.0.1:$(port_of "$name") (for $name server) is already in use"
        fi
    done
    write_configs
    build_rings
    for name in "${SERVERS[@]}"; do start_server "$name"; done
    if ! wait_ready account container object proxy; then
        for name in "${SERVERS[@]}"; do stop_server "$name"; done
        die "startup failed (configs and logs in $DIR)"
    fi
}

[[ $# -ge 2 ]] || usage
CMD=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd)

case $CMD in
    start)
        [[ $# -eq 3 ]] || usage
        cmd_start "$3"
        ;;
    stop)
        [[ -f $DIR/run/port ]] || exit 0
        for name in proxy object container account; do stop_server "$name"; done
        ;;
    stop-proxy)
        [[ -f $DIR/run/port ]] || die "nothing started in $DIR"
        stop_server proxy
        ;;
    start-proxy)
        [[ -f $DIR/run/port ]] || die "nothing started in $DIR"
        start_server proxy
        wait_ready proxy || die "proxy did not come back (log: $DIR/log/proxy.log)"
        ;;
    status)
        [[ -f $DIR/run/port ]] || exit 1
        healthy "$(port_of proxy)"
        ;;
    *) usage ;;
esac
