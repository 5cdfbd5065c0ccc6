#!/usr/bin/env bash
# 73-rel-s3-faults-torture: S3 faults through tests/lib/faultproxy.py during replication and restore.
# The daemon is mounted with -o endpoint=<proxy>; an app keeps committing transactions
# (synchronous=NORMAL) the whole time. Faults in turn: 503 bursts, SlowDown, 500, connection
# resets, truncated responses, 3 s delays, a hung request, then the S3 endpoint down (every
# connection reset by the proxy) for 20 s (60 s with BFS_TORTURE=1). After each: the app never saw an error,
# the lag drains to 0, a strict restore (every checksum verified) equals the local database,
# and every generation's batches are contiguous (no gap, no overlap, no duplicate range).
# Quick tier: 503, reset, truncate, hang + 20 s down; BFS_TORTURE=1: every fault, 60 s down.
# Restore under faults: the CLI (503, reset, truncate, delay, hang) and a lazy open on an empty
# backing dir through the proxy both give the exact database.
# timeout: 900
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

DOWN_S=$([[ ${BFS_TORTURE:-0} == 1 ]] && echo 60 || echo 20)
repl_bucket
MODE=$TEST_TMP/mode
echo ok >"$MODE"
PROXY=$(faultproxy_start "$MODE")
B=$TEST_TMP/back M=$TEST_TMP/mnt STOP=$TEST_TMP/stop PAUSE=$TEST_TMP/pause
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1,endpoint="$PROXY"

# the app: commits until $STOP exists (pauses while $PAUSE exists, acknowledged by creating
# $PAUSE.ack); any error fails it (exit 1)
"$PY" - "$M/app.db" "$STOP" "$PAUSE" >"$TEST_TMP/app.out" 2>&1 <<'EOF' &
import os, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=normal")
c.execute("create table t(id integer primary key, v blob)")
n = 0
while not os.path.exists(sys.argv[2]):
    if os.path.exists(sys.argv[3]):
        open(sys.argv[3] + ".ack", "w").close()
        time.sleep(0.05)
        continue
    c.execute("begin")
    for _ in range(1 + n % 5):
        c.execute("insert into t(v) values (randomblob(?))", (50 + (n * 37) % 500,))
    c.execute("commit")
    n += 1
    if n % 300 == 0:
        c.execute("pragma wal_checkpoint(TRUNCATE)")
    time.sleep(0.02)
print("app: %d transactions, no error" % n)
EOF
APP=$!
on_exit _bfs_stop_pid "$APP"

# check_batches: every generation's batch ranges are 1..N contiguous, each range once
check_batches() {
    "$PY" - "$BFS_S3_ENDPOINT" "$BUCKET" <<'EOF'
import boto3, re, sys, collections
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
keys = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    keys += [o["Key"] for o in page.get("Contents", [])]
gens = collections.defaultdict(list)
for k in keys:
    m = re.match(r"^(.*)-([0-9a-f-]{36})/(\d+)-(\d+)-\d+\.(zstd|gz|raw)$", k)
    if m:
        gens[(m.group(1), m.group(2))].append((int(m.group(3)), int(m.group(4)), k))
for g, bs in gens.items():
    bs.sort()
    want = 1
    for first, last, k in bs:
        if first != want or last < first:
            sys.exit("generation %s: batch %s after frame %d (gap, overlap or duplicate)"
                     % (g[1], k, want - 1))
        want = last + 1
print("%d generations, %d batches, contiguous" % (len(gens), sum(map(len, gens.values()))))
EOF
}

settle_and_check() { # LABEL: fault off, app paused: the lag drains to 0, batches are sound
    local label=$1
    echo ok >"$MODE"
    rm -f "$PAUSE.ack"
    touch "$PAUSE"
    wait_until 60 test -e "$PAUSE.ack"
    repl_wait_synced 180 "$M" app.db
    rm -f "$PAUSE"
    kill -0 "$APP" 2>/dev/null || { cat "$TEST_TMP/app.out" >&2; fail "$label: the app died"; }
    check_batches >"$TEST_TMP/batches" || fail "$label: bad batch layout"
    note "$label: synced; $(cat "$TEST_TMP/batches")"
}

wait_until 60 test -s "$B/app.db"
if [[ ${BFS_TORTURE:-0} == 1 ]]; then
    FAULTS=("503 6" "slowdown 6" "500 4" "reset 4" "truncate 4" "delay 3000 4" "hang 1")
    RFAULTS=("503 3" "slowdown 3" "reset 2" "truncate 2" "delay 3000 2" "hang 1")
else # quick tier: one of each kind of trouble
    FAULTS=("503 4" "reset 3" "truncate 3" "hang 1")
    RFAULTS=("slowdown 3" "reset 2" "truncate 2" "hang 1")
fi
for fault in "${FAULTS[@]}"; do
    : >"$MODE.log"
    echo "$fault" >"$MODE"
    # let the fault hit real requests of the replication (the proxy logs each faulted one)
    wait_until 120 grep -q 'fault=[^o]' "$MODE.log"
    settle_and_check "fault '$fault'"
done

note "S3 endpoint down for ${DOWN_S}s"
echo reset >"$MODE" # every request, until the mode changes (64 stops the server itself)
end=$(($(date +%s) + DOWN_S))
wait_until $((DOWN_S + 30)) bash -c "grep -q '\"s3_outage\": *true' '$M/.bottomless/status'"
while (($(date +%s) < end)); do
    kill -0 "$APP" 2>/dev/null || { cat "$TEST_TMP/app.out" >&2; fail "the app died during the outage"; }
    sleep 1 # the outage lasts DOWN_S seconds of wall time (not a synchronisation)
done
echo ok >"$MODE"
settle_and_check "outage ${DOWN_S}s"
grep -q 'upload: recovered' "$BFS_FS_LOG" || fail "no 'upload: recovered' line after the outage"

touch "$STOP"
wait "$APP" || { cat "$TEST_TMP/app.out" >&2; fail "the app saw an error"; }
note "$(cat "$TEST_TMP/app.out")"
repl_wait_synced 120 "$M" app.db
sum=$(sha3 "$M/app.db")
unmount_fs "$M"
cli -d app.db restore --strict -o "$TEST_TMP/strict.db" >/dev/null 2>&1 || fail "strict restore"
[[ $(sha3 "$TEST_TMP/strict.db") == "$sum" ]] || fail "strict restore differs from the local database"

# --- restore under faults -------------------------------------------------------------------
clip() { "$BFS_BIN/bottomless-cli" -e "$PROXY" -b "$BUCKET" "$@"; }
for fault in "${RFAULTS[@]}"; do
    echo "$fault" >"$MODE"
    rm -f "$TEST_TMP/f.db"
    timeout 300 "$BFS_BIN/bottomless-cli" -e "$PROXY" -b "$BUCKET" -d app.db restore -o "$TEST_TMP/f.db" \
        >"$TEST_TMP/f.out" 2>&1 || { cat "$TEST_TMP/f.out" >&2; fail "CLI restore under '$fault' failed"; }
    [[ $(sha3 "$TEST_TMP/f.db") == "$sum" ]] || fail "CLI restore under '$fault' differs"
    note "CLI restore under '$fault': exact"
done
# lazy open on an empty backing dir, through the proxy, with faults
B2=$TEST_TMP/back2
mkdir -p "$B2"
echo ok >"$MODE"
mount_fs "$B2" "$M" -o batch_interval=1,endpoint="$PROXY"
echo "503 3" >"$MODE"
got=$(sha3 "$M/app.db") || fail "lazy open under 503 failed"
[[ $got == "$sum" ]] || fail "lazy restore under faults differs"
echo ok >"$MODE"
unmount_fs "$M"
note "lazy open under 503s: exact"
