#!/usr/bin/env bash
# demo.sh - `make demo`: a local S3 server, a mount, a sample app, the backup, a lazy restore.
#
# Everything lives under DEMO_DIR (default ./demo; recreated on each run, removed at the end
# of a successful run unless DEMO_KEEP=1, kept with its logs when a step fails). The S3 server
# listens on 127.0.0.1:DEMO_PORT..DEMO_PORT+3 (default: the first free of 18480, 18490, ...).
# Ctrl-C or any failure unmounts, stops the daemon and the S3 server; exit status 0 only when
# every step worked. BFS_BIN names the directory holding bottomlessfs and bottomless-cli.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BFS_BIN:-$ROOT/build}
DEMO=${DEMO_DIR:-$ROOT/demo}
SWIFT=$ROOT/tests/lib/swift.sh
MNT=$DEMO/mnt
DATA=$DEMO/data
LOG=$DEMO/bottomlessfs.log
DAEMON_PID=
OK=0
# fd 3: the real stderr, for messages from traps, which may fire inside a redirected command
exec 3>&2

if [[ -t 1 ]]; then
    say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '\n==> %s\n' "$*"; }
fi
die() {
    echo "demo: error: $*" >&3
    if [[ -s $LOG ]]; then
        echo "demo: the last lines the daemon logged ($LOG):" >&3
        tail -n 15 "$LOG" >&3
    fi
    exit 1
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # the first base port whose 4 ports (proxy, object, container, account) are free
    local p i busy
    for ((p = 18480; p < 18980; p += 10)); do
        busy=0
        for i in 0 1 2 3; do port_busy $((p + i)) && busy=1; done
        ((busy)) || { echo "$p"; return 0; }
    done
    return 1
}

# daemon_pid: pid of our bottomlessfs (argv exactly "bottomlessfs -f DATA MNT"), from /proc
daemon_pid() {
    local f want got
    want=$(printf '%s\0' "$BIN/bottomlessfs" -f "$DATA" "$MNT" | od -An -tx1 | tr -d ' \n')
    for f in /proc/[0-9]*/cmdline; do
        got=$(od -An -tx1 "$f" 2>/dev/null | tr -d ' \n') || continue
        if [[ $got == "$want" ]]; then
            f=${f#/proc/}
            echo "${f%/cmdline}"
            return 0
        fi
    done
    return 1
}

cleanup() {
    local rc=$? pid deadline
    set +e
    trap - EXIT INT TERM HUP
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
    fi
    pid=${DAEMON_PID:-$(daemon_pid)}
    if [[ -n $pid ]]; then
        deadline=$((SECONDS + 70)) # the daemon's default flush_timeout is 60 s
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null
    fi
    [[ -f $DEMO/swift/run/port ]] && bash "$SWIFT" stop "$DEMO/swift" >/dev/null 2>&1
    if ((OK)) && [[ ${DEMO_KEEP:-0} != 1 ]]; then
        rm -rf "$DEMO"
    elif [[ -d $DEMO ]]; then
        echo "demo: files kept for inspection in $DEMO (daemon log: $LOG)" >&3
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo >&3; echo "demo: interrupted, cleaning up" >&3; exit 130' INT TERM HUP

wait_for() { # wait_for SECS DESCRIPTION CMD...
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

mount_demo() { # start the daemon in the foreground (its log goes to $LOG), wait for the mount
    "$BIN/bottomlessfs" -f "$DATA" "$MNT" </dev/null >>"$LOG" 2>&1 3>&- &
    DAEMON_PID=$!
    local deadline=$((SECONDS + 30))
    until mountpoint -q "$MNT"; do
        kill -0 "$DAEMON_PID" 2>/dev/null || { DAEMON_PID=; die "bottomlessfs exited before mounting"; }
        ((SECONDS < deadline)) || die "timed out after 30s waiting for the mount"
        sleep 0.2
    done
}

unmount_demo() { # bottomlessfs -u returns once the daemon has flushed everything and exited
    echo "\$ bottomlessfs -u $MNT"
    "$BIN/bottomlessfs" -u "$MNT" || die "bottomlessfs -u $MNT failed"
    wait "$DAEMON_PID" || die "bottomlessfs exited with status $?"
    DAEMON_PID=
}

status_lag_zero() {
    /usr/bin/python3 - "$MNT/.bottomless/status" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
dbs = st.get("databases", [])
ok = dbs and all(d.get("lag_s", 1) == 0 and d.get("staged_bytes", 1) == 0
                 and d.get("last_uploaded_frame", 0) == d.get("last_committed_frame", -1)
                 for d in dbs)
sys.exit(0 if ok else 1)
PY
}

show_status() { # the status file, one database per line, fields that matter here
    /usr/bin/python3 - "$MNT/.bottomless/status" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
print("bucket=%s endpoint=%s durable=%s" % (st["bucket"], st["endpoint"], st["durable"]))
for d in st["databases"]:
    print("  %(db_name)s: generation %(generation)s, journal_mode=%(journal_mode)s, "
          "protected=%(protected)s, committed frame %(last_committed_frame)s, "
          "uploaded frame %(last_uploaded_frame)s, lag %(lag_s)ss" % d)
PY
}

command -v sqlite3 >/dev/null || die "sqlite3 not found: run 'make deps'"
command -v fusermount3 >/dev/null || die "fusermount3 not found: run 'make deps'"
[[ -x $BIN/bottomlessfs && -x $BIN/bottomless-cli ]] || die "binaries missing in $BIN: run make first"
if [[ -n ${DEMO_PORT:-} ]]; then
    PORT=$DEMO_PORT
else
    PORT=$(pick_port) || die "no free ports for the S3 server in 18480..18979 (set DEMO_PORT)"
fi

export LIBSQL_BOTTOMLESS_ENDPOINT=http://127.0.0.1:$PORT
export LIBSQL_BOTTOMLESS_BUCKET=demo
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=test:tester
export LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=testing
export LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
unset AWS_SESSION_TOKEN LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN AWS_PROFILE

say "Cleaning up any previous demo run under $DEMO"
if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u -z "$MNT" || true; fi
old=$(daemon_pid) && { kill -TERM "$old" 2>/dev/null || true; }
if [[ -f $DEMO/swift/run/port ]]; then bash "$SWIFT" stop "$DEMO/swift" >/dev/null 2>&1 || true; fi
rm -rf "$DEMO"
mkdir -p "$MNT" "$DATA" "$DEMO/swift"

say "Starting a local S3 server (OpenStack Swift's S3 API) on 127.0.0.1:$PORT, data in $DEMO/swift"
bash "$SWIFT" start "$DEMO/swift" "$PORT" 3>&- || die "the S3 server did not start (logs in $DEMO/swift/log)"
aws --endpoint-url "$LIBSQL_BOTTOMLESS_ENDPOINT" s3api create-bucket --bucket demo >/dev/null ||
    die "could not create the bucket"
echo "bucket 'demo' created"

say "Mounting $MNT over $DATA (every SQLite database in it is backed up to s3://demo)"
echo "\$ bottomlessfs -f $DATA $MNT    (log: $LOG)"
mount_demo
echo "mounted: $(grep " $MNT " /proc/mounts | cut -d' ' -f1-3)"

say "Running a sample app: sqlite3 creates a WAL database and writes 100 orders in 100 transactions"
sqlite3 "$MNT/shop.db" "PRAGMA journal_mode=wal;" \
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, qty INTEGER, at TEXT DEFAULT CURRENT_TIMESTAMP);" >/dev/null
for i in $(seq 1 100); do
    echo "INSERT INTO orders(item, qty) VALUES ('item-$i', $((i % 7 + 1)));"
done | sqlite3 "$MNT/shop.db"
before=$(sqlite3 "$MNT/shop.db" "SELECT count(*) FROM orders;")
sum_before=$(sqlite3 "$MNT/shop.db" ".sha3sum")
[[ $before == 100 ]] || die "expected 100 rows in shop.db, found '$before'"
echo "rows in shop.db: $before"

say "Waiting until every committed transaction is in S3 (the status file reports lag 0)"
wait_for 60 "replication to catch up" status_lag_zero
echo "\$ cat $MNT/.bottomless/status   (JSON; the fields that matter here)"
show_status

say "What the backup looks like: bottomless-cli -d shop.db ls -v"
echo "(sqlite3 checkpoints and deletes the -wal when its last connection closes; each"
echo " such restart of the WAL begins a new generation, linked to the previous one)"
"$BIN/bottomless-cli" -d shop.db ls -v

say "Unmounting (the daemon flushes everything to S3 first)"
unmount_demo

say "Deleting the local copy, as if this were a new machine"
rm -f "$DATA"/shop.db*
ls -A "$DATA" | grep -v '^\.bottomless$' || echo "($DATA holds no database now)"

say "Mounting again: shop.db is listed from the bucket and restored the moment it is opened"
mount_demo
echo "\$ ls -l $MNT"
ls -l "$MNT"
[[ ! -e $DATA/shop.db ]] || die "shop.db exists locally before anyone opened it"
echo "(not in $DATA yet: the listing comes from the bucket)"
after=$(sqlite3 "$MNT/shop.db" "SELECT count(*) FROM orders;")
sum_after=$(sqlite3 "$MNT/shop.db" ".sha3sum")
[[ -f $DATA/shop.db ]] || die "shop.db was not restored into $DATA"
echo "rows before: $before   rows after the lazy restore: $after"
[[ $after == "$before" && $sum_after == "$sum_before" ]] || die "restored database differs from the original"
echo "content hash (sqlite3 .sha3sum) identical: $sum_after"
grep -E 'lazy|restor' "$LOG" | tail -n 3 || true

say "Restoring with the CLI too: bottomless-cli -d shop.db restore -o $DEMO/restored.db"
"$BIN/bottomless-cli" -d shop.db restore -o "$DEMO/restored.db" || die "bottomless-cli restore failed"
sum_cli=$(sqlite3 "$DEMO/restored.db" ".sha3sum")
[[ $sum_cli == "$sum_before" ]] || die "CLI restore differs from the original"
echo "rows in the CLI restore: $(sqlite3 "$DEMO/restored.db" "SELECT count(*) FROM orders;"), content hash identical"

say "Unmounting and stopping the S3 server"
unmount_demo
echo "--- what the daemon logged ($LOG):"
cat "$LOG"
OK=1
say "Demo finished: every step worked"
