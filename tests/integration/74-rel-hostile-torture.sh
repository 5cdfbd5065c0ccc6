#!/usr/bin/env bash
# 74-rel-hostile-torture: hostile and broken buckets, restored with the CLI and opened lazily
# through a mount (tests/integration/32-restore-corrupt.sh covers bit flips, truncation, a
# missing batch, a short .meta, a corrupt snapshot and .dep cycles / missing parents on the
# restore tool). Here:
#   - an empty batch, a batch overlapping the previous one, a gap (missing middle batch),
#     a .meta with the wrong page size, an empty snapshot: a clear error or a partial restore
#     to the last consistent transaction (never a wrong database: integrity_check ok and the
#     content equals one of the committed states);
#   - a chain of N generations (.dep to .dep ... to the one with the data; N = 150, 10,000
#     with BFS_TORTURE=1): restore ends with the data or a clear error, no crash, no hang;
#   - object keys "../x-<gen>/...", "a/../../b-<gen>/...", escaped "..%2F..%2Fevil.db",
#     "%2Fabs.db", names with control characters (tab, newline, DEL, U+202E: Swift's XML
#     listing cannot carry C0 controls other than those) and a 300-byte name: `ls`, restore and the
#     mount's readdir/open never write outside the target / backing directory.
# timeout: 1800
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

N_GENS=$([[ ${BFS_TORTURE:-0} == 1 ]] && echo 10000 || echo 150)
MK=$BFS_BIN/tools/mkbucket
W=$TEST_TMP/work
mkdir -p "$W"
for i in 1 2 3 4; do
    echo "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200) INSERT INTO t(v) SELECT 'f$i-' || x || hex(randomblob(50)) FROM c; COMMIT;" >"$W/s$i.sql"
done
export LIBSQL_BOTTOMLESS_ENDPOINT=$BFS_S3_ENDPOINT

# make_gen NAME: a fresh bucket (BUCKET) with one generation G of NAME: snapshot + 4 batches;
# the states after each batch are $W/st/state-<i>.db
make_gen() {
    rm -rf "$W/src.db"* "$W/st"
    mkdir -p "$W/st"
    sqlite3 "$W/src.db" "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('seed');" >/dev/null
    cp "$W/src.db" "$W/st/state-0.db"
    repl_bucket
    G=$("$MK" -b "$BUCKET" -n "$1" -D "$W/src.db" --ts 1700000000 --ts-step 10 --state-dir "$W/st" \
        "$W/s1.sql" "$W/s2.sql" "$W/s3.sql" "$W/s4.sql" 2>/dev/null) || fail "mkbucket"
}
keys() { awss3 s3api list-objects --bucket "$BUCKET" --prefix "$1" --query 'Contents[].Key' --output text | tr '\t' '\n'; }
put_bytes() { # KEY PYTHON_BYTES_EXPR
    "$PY" -c "import sys; open(sys.argv[1],'wb').write($2)" "$W/obj"
    awss3 s3 cp "$W/obj" "s3://$BUCKET/$1" >/dev/null
}
# restore_outcome LABEL: CLI restore of db; ok if it fails with a message, or produces a
# database that passes integrity_check and equals one of the committed states
restore_outcome() {
    local label=$1 rc=0 s i match=
    rm -f "$W/out.db"
    timeout 120 "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b "$BUCKET" -d db restore -o "$W/out.db" \
        >"$W/out.txt" 2>&1 || rc=$?
    ((rc != 124)) || fail "$label: restore hung"
    ((rc < 128)) || { cat "$W/out.txt" >&2; fail "$label: restore crashed (status $rc)"; }
    grep -qE 'AddressSanitizer|runtime error' "$W/out.txt" && { cat "$W/out.txt" >&2; fail "$label: sanitizer"; }
    if ((rc != 0)); then
        [[ -s $W/out.txt ]] || fail "$label: failed without a message"
        note "$label: error: $(grep -m1 error "$W/out.txt" | cut -c1-200)"
        return 0
    fi
    [[ $(sqlite3 "$W/out.db" 'pragma integrity_check') == ok ]] || fail "$label: restored db is corrupt"
    s=$(sha3 "$W/out.db")
    for i in 0 1 2 3 4; do
        [[ $s == $(sha3 "$W/st/state-$i.db") ]] && match=$i
    done
    [[ -n $match ]] || fail "$label: restored database is none of the committed states"
    note "$label: restored state $match $(grep -m1 -iE 'partial|stopp' "$W/out.txt" | cut -c1-160)"
}

# --- broken batches / meta / snapshot -------------------------------------------------------
make_gen db
b=($(keys "db-$G/0"))
put_bytes "${b[1]}" "b''"
restore_outcome "empty batch 2"

make_gen db
b=($(keys "db-$G/0"))
# batch 3 renamed to overlap batch 2 (first frame moved back by one)
f3=${b[2]##*/}
first=${f3%%-*}
rest=${f3#*-}
awss3 s3 cp "s3://$BUCKET/${b[2]}" "s3://$BUCKET/db-$G/$(printf '%012d' $((10#$first - 1)))-$rest" >/dev/null
awss3 s3 rm "s3://$BUCKET/${b[2]}" >/dev/null
restore_outcome "overlapping batch 3"

make_gen db
b=($(keys "db-$G/0"))
awss3 s3 rm "s3://$BUCKET/${b[1]}" >/dev/null
restore_outcome "gap (batch 2 missing)"

make_gen db
put_bytes "db-$G/.meta" "(8192).to_bytes(4,'big') + open('/dev/zero','rb').read(8)"
restore_outcome ".meta with page size 8192 (the WAL has 4096)"

make_gen db
for k in $(keys "db-$G/db."); do put_bytes "$k" "b''"; done
restore_outcome "empty snapshot"

# --- a chain of N generations ---------------------------------------------------------------
make_gen db
H=$("$MK" -b "$BUCKET" -n tmpl -D "$W/tmpl.db" --created $(($(date +%s) + 100)) --no-snapshot 2>/dev/null) ||
    fail "mkbucket (template generation)"
note "chain of $N_GENS generations above $G"
"$PY" - "$BFS_S3_ENDPOINT" "$BUCKET" "$G" "$H" "$N_GENS" <<'EOF' || fail "building the chain"
import boto3, sys, uuid, concurrent.futures as cf
ep, bucket, g, h, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
s3 = boto3.client("s3", endpoint_url=ep)
meta = s3.get_object(Bucket=bucket, Key="db-%s/.meta" % g)["Body"].read()
# ids sharing H's time prefix (newer than G); smaller tail = listed first = newest
ids = [h[:24] + "%012x" % i for i in range(n)]
def put(i):
    parent = ids[i + 1] if i + 1 < n else g
    s3.put_object(Bucket=bucket, Key="db-%s/.meta" % ids[i], Body=meta)
    s3.put_object(Bucket=bucket, Key="db-%s/.dep" % ids[i], Body=uuid.UUID(parent).bytes)
with cf.ThreadPoolExecutor(8) as ex:
    list(ex.map(put, range(n)))
EOF
restore_outcome "chain of $N_GENS generations"

# --- hostile names --------------------------------------------------------------------------
make_gen db
OUTER=$TEST_TMP/outer
mkdir -p "$OUTER/cwd" "$OUTER/back" "$OUTER/mnt"
"$PY" - "$BFS_S3_ENDPOINT" "$BUCKET" "$G" <<'EOF' || fail "writing hostile keys"
import boto3, sys
ep, bucket, g = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=ep)
names = ["../x", "a/../../b", "..%2F..%2Fevil.db", "%2Fabs.db", "..", ".", "ctl\t\x7f\u202e.db",
         "nl\nname.db", "A" * 300, "sub%2F..%2F..%2Fup.db", "%2e%2e%2Fdots.db"]
src = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="db-%s/" % g)["Contents"]]
for n in names:
    for k in src:
        s3.copy_object(Bucket=bucket, Key=n + k[2:], CopySource={"Bucket": bucket, "Key": k})
EOF
find "$TEST_TMP" -path "$OUTER/mnt" -prune -o -print | sort >"$W/before"
(cd "$OUTER/cwd" && timeout 120 "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b "$BUCKET" ls >"$W/ls.txt" 2>&1) ||
    { cat "$W/ls.txt" >&2; fail "ls of a bucket with hostile names failed"; }
for n in "../x" "..%2F..%2Fevil.db" "%2Fabs.db" ".." "sub%2F..%2F..%2Fup.db" "%2e%2e%2Fdots.db" "$(printf 'ctl\t\177\342\200\256.db')" "$(printf 'A%.0s' {1..300})"; do
    rc=0
    (cd "$OUTER/cwd" && timeout 120 "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b "$BUCKET" -d "$n" restore \
        >"$W/h.txt" 2>&1) || rc=$?
    ((rc != 124 && rc < 128)) || { cat "$W/h.txt" >&2; fail "restore of a hostile name crashed or hung ($rc)"; }
done
# the mount lists and opens whatever it shows; nothing lands outside the backing dir
mount_fs "$OUTER/back" "$OUTER/mnt" -o list_ttl=1
timeout 120 find "$OUTER/mnt" -maxdepth 3 >"$W/mnt.txt" 2>&1 || true
while IFS= read -r f; do
    [[ -f $f ]] && timeout 60 sqlite3 "file:$f?mode=ro" 'select count(*) from t' >/dev/null 2>&1 || true
done <"$W/mnt.txt"
fs_is_mounted "$OUTER/mnt" || fail "the daemon died on hostile names"
unmount_fs "$OUTER/mnt"
find "$TEST_TMP" -path "$OUTER/mnt" -prune -o -print | sort >"$W/after"
# allowed new paths: inside the cwd of the CLI, inside the backing dir, and our own work files
comm -13 "$W/before" "$W/after" | grep -vE "^($OUTER/cwd|$OUTER/back|$W)(/|$)|^$TEST_TMP/bottomlessfs\.[0-9]+\.log$" >"$W/escaped" || true
[[ ! -s $W/escaped ]] || { cat "$W/escaped" >&2; fail "files were written outside the target directories"; }
[[ ! -e $TEST_TMP/x && ! -e $TEST_TMP/evil.db && ! -e /abs.db && ! -e $OUTER/up.db && ! -e $OUTER/dots.db ]] ||
    fail "a hostile name escaped"
note "hostile names: listed $(grep -c . "$W/mnt.txt") mount entries; nothing written outside"
