#!/usr/bin/env bash
# 55-cli-snapshot: `bottomless-cli snapshot` builds the snapshot of a generation without one
# from its .dep parent chain and uploads it; ls -v shows it, restore then starts from it and
# equals the source (.sha3sum); rm --older-than can then drop the older generations and the
# database still restores. Errors: a generation that already has a snapshot, one without a
# parent.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GENPY=$BFS_ROOT/tests/integration/59-cli-bucketgen.py
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
W=$TEST_TMP/w
mkdir -p "$W"
export TMPDIR=$TEST_TMP/tmp
mkdir -p "$TMPDIR"

T1=1700000000 T2=1700086400 T3=1700172800
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db s.db --workdir "$W" \
    gen:$T1 "sql:CREATE TABLE t(a INTEGER PRIMARY KEY, b)" \
    "sql:INSERT INTO t(b) SELECT randomblob(700) FROM (SELECT 1 UNION SELECT 2)" ship genid:g1 \
    gen:$T2:none "sql:INSERT INTO t(b) VALUES (randomblob(5000))" ship:$T2:gz save:s2 genid:g2 \
    gen:$T3:none "sql:DELETE FROM t WHERE a = 1" ship save:s3 genid:g3 ||
    fail "bucketgen failed"
g1=$(cat "$W/g1.gen") g2=$(cat "$W/g2.gen") g3=$(cat "$W/g3.gen")
sha() { sqlite3 "$1" .sha3sum; }

"$CLI" -d s.db ls -g "$g3" -v | grep -q "no main database snapshot file found" ||
    fail "setup: g3 already has a snapshot"

# --- snapshot of the newest generation (default) ---
out=$("$CLI" -d s.db snapshot) || fail "snapshot failed: $out"
note "$out"
grep -qx "snapshot uploaded for generation: $g3" <<<"$out" || fail "snapshot output"
awss3 s3api head-object --bucket "$bucket" --key "s.db-$g3/db.zstd" >/dev/null ||
    fail "no s.db-$g3/db.zstd"
awss3 s3api head-object --bucket "$bucket" --key "s.db-$g3/.changecounter" >/dev/null ||
    fail "no s.db-$g3/.changecounter"
# the snapshot is the state at the start of g3 = end of g2
awss3 s3 cp "s3://$bucket/s.db-$g3/db.zstd" "$TEST_TMP/snap.zstd"
zstd -q -d "$TEST_TMP/snap.zstd" -o "$TEST_TMP/snap.db"
[[ $(sha "$TEST_TMP/snap.db") == $(sha "$W/s2.db") ]] || fail "snapshot is not the end state of g2"
"$CLI" -d s.db ls -g "$g3" -v | grep -qxF $'\t\tobject:        db.zstd' || fail "ls -v does not show it"
[[ -z $(ls -A "$TMPDIR") ]] || fail "snapshot left files in TMPDIR"

out=$("$CLI" -d s.db restore -o "$TEST_TMP/r.db") || fail "restore after snapshot failed"
grep -qE "^  snapshot: +s\.db-$g3/db\.zstd$" <<<"$out" || fail "restore did not use the new snapshot: $out"
[[ $(sha "$TEST_TMP/r.db") == $(sha "$W/s3.db") ]] || fail "restore after snapshot differs"

# --- -g and -c gz ---
"$CLI" -d s.db snapshot -g "$g2" -c gz >/dev/null || fail "snapshot -g g2 -c gz"
awss3 s3api head-object --bucket "$bucket" --key "s.db-$g2/db.gz" >/dev/null || fail "no db.gz"

# --- errors ---
rc=0
"$CLI" -d s.db snapshot -g "$g3" 2>"$TEST_TMP/err" >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -q "already has a snapshot" "$TEST_TMP/err" ||
    fail "snapshot of a generation with one: exit $rc $(cat "$TEST_TMP/err")"
rc=0
"$CLI" -d s.db snapshot -g "$g1" 2>"$TEST_TMP/err" >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -q "parent generation not found" "$TEST_TMP/err" ||
    fail "snapshot of the first generation: exit $rc $(cat "$TEST_TMP/err")"

# --force replaces a snapshot, also one of another compression
"$CLI" -d s.db snapshot -g "$g2" -c raw --force >/dev/null || fail "snapshot --force"
awss3 s3api head-object --bucket "$bucket" --key "s.db-$g2/db.raw" >/dev/null || fail "no db.raw"
awss3 s3api head-object --bucket "$bucket" --key "s.db-$g2/db.gz" >/dev/null 2>&1 &&
    fail "stale db.gz left after snapshot --force"
"$CLI" -d s.db restore -g "$g2" -o "$TEST_TMP/g2.db" >/dev/null || fail "restore g2"
[[ $(sha "$TEST_TMP/g2.db") == $(sha "$W/s2.db") ]] || fail "restore of g2 from db.raw differs"

# --- now the older generations can go ---
out=$("$CLI" -d s.db rm --older-than 2023-11-16T22:13:20) || fail "rm failed"
grep -q "Removed 2 generations" <<<"$out" || fail "rm did not remove g1 and g2: $out"
"$CLI" -d s.db restore -o "$TEST_TMP/r2.db" >/dev/null || fail "restore after rm"
[[ $(sha "$TEST_TMP/r2.db") == $(sha "$W/s3.db") ]] || fail "restore after rm differs"
note "ok"
