# 60-repl-lib.bash - helpers shared by the replication tests (tests/integration/6*-repl-*.sh).
# Not a test itself (run-integration.sh only runs *.sh). Source after common.sh and fs.sh.
#
#   repl_bucket                 creates a fresh bucket, exports LIBSQL_BOTTOMLESS_BUCKET=BUCKET
#   repl_status MNT             prints MNT/.bottomless/status
#   repl_synced MNT [PATH...]   true when every database (or each PATH, which must be listed)
#                               has lag 0, nothing staged, no snapshot pending and
#                               last_uploaded_frame >= last_committed_frame
#   repl_wait_synced SECS MNT [PATH...]   wait_until for repl_synced, prints the status on failure
#   cli ARGS...                 bottomless-cli against the test endpoint and bucket
#   sha3 FILE                   sqlite3 .sha3sum of FILE (content hash, independent of the WAL;
#                               waits up to 10 s for another connection's lock)
#   gens DB                     generation ids of DB in the bucket, newest first
#   dep_of DB GEN               the generation named by DB-GEN/.dep (empty when none)
#   descends_from DB GEN ANC    true when ANC is on GEN's .dep chain (at most 5 links up);
#                               prints the chain walked ("GEN <- PARENT <- ...")
#   roots DB                    how many of DB's generations have no .dep (1: a single history)
#   repl_insert DB N            N autocommit INSERTs of a 300-byte blob into table t of DB
#                               (WAL mode; the table is created if missing), Python's sqlite3

PY=/usr/bin/python3

repl_bucket() {
    BUCKET=$(new_bucket)
    export BUCKET LIBSQL_BOTTOMLESS_BUCKET=$BUCKET
}

repl_status() {
    cat "$1/.bottomless/status"
}

repl_synced() {
    local mnt=$1
    shift
    "$PY" - "$mnt/.bottomless/status" "$@" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    st = json.load(f)
dbs = {d["path"]: d for d in st["databases"]}
want = sys.argv[2:] or list(dbs)
if not want:
    sys.exit(1)
for p in want:
    d = dbs.get(p)
    if d is None:
        sys.exit(1)
    if d["lag_s"] != 0 or d["staged_bytes"] != 0 or d["snapshot_pending"]:
        sys.exit(1)
    if d["last_uploaded_frame"] < d["last_committed_frame"]:
        sys.exit(1)
EOF
}

repl_wait_synced() {
    local secs=$1
    shift
    local end_ns=$(($(date +%s%N) + secs * 1000000000))
    while ! repl_synced "$@" 2>/dev/null; do
        if (($(date +%s%N) >= end_ns)); then
            repl_status "$1" >&2 || true
            fail "replication did not catch up within ${secs}s"
        fi
        sleep 0.2
    done
}

cli() {
    "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b "$BUCKET" "$@"
}

sha3() {
    # .timeout: without a busy timeout .sha3sum prints nothing, and exits 0, while another
    # connection holds a lock (seen in 60: a concurrent opener's last close checkpointing)
    sqlite3 -cmd ".timeout 10000" "$1" .sha3sum
}

gens() {
    awss3 s3api list-objects-v2 --bucket "$BUCKET" --prefix "$1-" --delimiter / \
        --query 'CommonPrefixes[].Prefix' --output text |
        tr '\t' '\n' | sed -nE "s#^.*-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/\$#\\1#p" |
        sort
}

dep_of() {
    local f=$TEST_TMP/dep.$$
    rm -f "$f"
    awss3 s3 cp "s3://$BUCKET/$1-$2/.dep" "$f" >/dev/null 2>&1 || return 0
    "$PY" -c 'import sys,uuid; print(uuid.UUID(bytes=open(sys.argv[1],"rb").read()))' "$f"
}

descends_from() {
    local g=$2 chain=$2 _
    for _ in 1 2 3 4 5; do
        g=$(dep_of "$1" "$g")
        chain+=" <- ${g:-none}"
        [[ -z $g || $g == "$3" ]] && break
    done
    echo "$chain"
    [[ $g == "$3" ]]
}

# lease_get DB FILE: the lease object "DB.lease" into FILE; 0 when there, 1 when absent
# (NoSuchKey), 2 on any other error (an S3 hiccup is neither answer)
lease_get() {
    rm -f "$2"
    awss3 s3api get-object --bucket "$BUCKET" --key "$1.lease" "$2" >/dev/null 2>"$2.err" &&
        return 0
    grep -q "NoSuchKey\|404" "$2.err" && return 1
    return 2
}

roots() {
    local g n=0
    for g in $(gens "$1"); do [[ -n $(dep_of "$1" "$g") ]] || n=$((n + 1)); done
    echo "$n"
}

repl_insert() {
    "$PY" - "$1" "$2" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("create table if not exists t(id integer primary key, v blob)")
for i in range(int(sys.argv[2])):
    c.execute("insert into t(v) values (randomblob(300))")
c.close()
EOF
}
