#!/usr/bin/env bash
# demo.sh - `make demo`: a local S3 server, a mount, a sample app, the backup, a lazy restore.
# Everything lives under ./demo (removed and recreated on each run); Ctrl-C cleans up too.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BFS_BIN:-$ROOT/build}
DEMO=$ROOT/demo
PORT=${DEMO_PORT:-18480}
SWIFT=$ROOT/tests/lib/swift.sh
MNT=$DEMO/mnt
DATA=$DEMO/data

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

export LIBSQL_BOTTOMLESS_ENDPOINT=http://127.0.0.1:$PORT
export LIBSQL_BOTTOMLESS_BUCKET=demo
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=test:tester
export LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=testing
export LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""

cleanup() {
    set +e
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null
    fi
    [[ -d $DEMO/swift/run ]] && bash "$SWIFT" stop "$DEMO/swift" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT TERM

wait_for() { # wait_for SECS DESCRIPTION CMD...
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

status_lag_zero() {
    /usr/bin/python3 - "$MNT/.bottomless/status" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
dbs = st.get("databases", [])
sys.exit(0 if dbs and all(d.get("lag_s", 1) == 0 and d.get("last_uploaded_frame", 0) == d.get("last_committed_frame", -1) for d in dbs) else 1)
PY
}

[[ -x $BIN/bottomlessfs && -x $BIN/bottomless-cli ]] || die "binaries missing in $BIN: run make first"

say "Cleaning up any previous demo run under $DEMO"
if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u -z "$MNT" || true; fi
[[ -d $DEMO/swift/run ]] && bash "$SWIFT" stop "$DEMO/swift" >/dev/null 2>&1 || true
rm -rf "$DEMO"
mkdir -p "$MNT" "$DATA" "$DEMO/swift"

say "Starting a local S3 server (OpenStack Swift's S3 API) on 127.0.0.1:$PORT, data in demo/swift"
bash "$SWIFT" start "$DEMO/swift" "$PORT"
aws --endpoint-url "$LIBSQL_BOTTOMLESS_ENDPOINT" s3api create-bucket --bucket demo >/dev/null
echo "bucket 'demo' created"

say "Mounting demo/mnt over demo/data (every SQLite database in it is backed up to s3://demo)"
"$BIN/bottomlessfs" "$DATA" "$MNT"
wait_for 10 "the mount" mountpoint -q "$MNT"
echo "mounted: $(grep " $MNT " /proc/mounts | cut -d' ' -f1-3)"

say "Running a sample app: sqlite3 creates a WAL database and writes 100 orders in 100 transactions"
sqlite3 "$MNT/shop.db" "PRAGMA journal_mode=wal;" \
    "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, qty INTEGER, at TEXT DEFAULT CURRENT_TIMESTAMP);" >/dev/null
for i in $(seq 1 100); do
    echo "INSERT INTO orders(item, qty) VALUES ('item-$i', $((i % 7 + 1)));"
done | sqlite3 "$MNT/shop.db"
before=$(sqlite3 "$MNT/shop.db" "SELECT count(*) FROM orders;")
sum_before=$(sqlite3 "$MNT/shop.db" ".sha3sum")
echo "rows in shop.db: $before"

say "Waiting until every committed transaction is in S3 (the status file reports lag 0)"
wait_for 60 "replication to catch up" status_lag_zero
echo "--- $MNT/.bottomless/status"
cat "$MNT/.bottomless/status"; echo

say "What the backup looks like: bottomless-cli -d shop.db ls -v"
"$BIN/bottomless-cli" -d shop.db ls -v

say "Unmounting (the daemon flushes everything to S3 first)"
fusermount3 -u "$MNT"
wait_for 60 "the daemon to exit" bash -c "! pgrep -f 'bottomlessfs $DATA' >/dev/null"

say "Deleting the local copy, as if this were a new machine"
rm -f "$DATA"/shop.db*
ls -A "$DATA" | grep -v '^\.bottomless$' || echo "(demo/data holds no database now)"

say "Mounting again: shop.db is listed from the bucket and restored the moment it is opened"
"$BIN/bottomlessfs" "$DATA" "$MNT"
wait_for 10 "the mount" mountpoint -q "$MNT"
ls -l "$MNT"
after=$(sqlite3 "$MNT/shop.db" "SELECT count(*) FROM orders;")
sum_after=$(sqlite3 "$MNT/shop.db" ".sha3sum")
echo "rows before: $before   rows after the lazy restore: $after"
[[ $after == "$before" && $sum_after == "$sum_before" ]] || die "restored database differs from the original"
echo "content hash (sqlite3 .sha3sum) identical: $sum_after"

say "Restoring with the CLI too: bottomless-cli -d shop.db restore -o demo/restored.db"
"$BIN/bottomless-cli" -d shop.db restore -o "$DEMO/restored.db"
[[ $(sqlite3 "$DEMO/restored.db" ".sha3sum") == "$sum_before" ]] || die "CLI restore differs"

say "Demo finished: unmounting and stopping the S3 server"
