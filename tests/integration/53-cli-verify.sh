#!/usr/bin/env bash
# 53-cli-verify: `bottomless-cli verify` prints "Verification: ok" (exit 0) on a healthy bucket,
# and "Verification failed: ..." naming the object (exit 1) once a batch is corrupted (a flipped
# byte inside a page: the checksum chain breaks). `restore` then still restores the last
# consistent state (partial, with a warning naming the key), and `restore --strict` fails
# leaving the output untouched. An older generation before the damage still verifies. A
# missing batch (gap) is reported the same way.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GENPY=$BFS_ROOT/tests/integration/59-cli-bucketgen.py
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
W=$TEST_TMP/w
mkdir -p "$W" "$TEST_TMP/gap"
export TMPDIR=$TEST_TMP/tmp # verify's temporary directory must be cleaned up
mkdir -p "$TMPDIR"

T1=1700000000 T2=1700086400
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db v.db --workdir "$W" \
    gen:$T1 "sql:CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)" \
    "sql:INSERT INTO t(b) SELECT randomblob(1000) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)" \
    ship:$((T1 + 10)) save:s1 genid:g1 \
    gen:$T2:zstd "sql:INSERT INTO t(b) VALUES (randomblob(3000))" ship:$((T2 + 10)):raw save:s2 \
    "sql:UPDATE t SET b = randomblob(10) WHERE a = 1" ship:$((T2 + 20)):raw save:s3 genid:g2 ||
    fail "bucketgen failed"
g1=$(cat "$W/g1.gen") g2=$(cat "$W/g2.gen")
sha() { sqlite3 "$1" .sha3sum; }

out=$("$CLI" -d v.db verify) || fail "verify of a healthy bucket failed: $out"
note "$out"
grep -qx "Verification: ok" <<<"$out" || fail "no 'Verification: ok'"
grep -qE "^Snapshot size: [0-9]+$" <<<"$out" || fail "no 'Snapshot size:'"
[[ -z $(ls -A "$TMPDIR") ]] || fail "verify left files in TMPDIR: $(ls -A "$TMPDIR")"

# corrupt the second batch of g2: flip one byte in the middle of its first page
key=$(awss3 s3 ls "s3://$bucket/v.db-$g2/" | awk '{print $4}' | grep -E '^[0-9]{12}-' | sed -n 2p)
[[ -n $key ]] || fail "no second batch in $g2"
awss3 s3 cp "s3://$bucket/v.db-$g2/$key" "$TEST_TMP/batch"
/usr/bin/python3 - "$TEST_TMP/batch" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[24 + 100] ^= 0x40
open(p, "wb").write(b)
EOF
awss3 s3 cp "$TEST_TMP/batch" "s3://$bucket/v.db-$g2/$key"

rc=0
out=$("$CLI" -d v.db verify 2>"$TEST_TMP/err") || rc=$?
note "$out / $(cat "$TEST_TMP/err")"
[[ $rc == 1 ]] || fail "verify of a corrupted batch: exit $rc"
grep -q "^Verification failed: .*$key" <<<"$out" || fail "verify does not name $key: $out"
grep -qx "Verification: ok" <<<"$out" && fail "verify printed ok on corruption"
grep -q "bottomless-cli: error: " "$TEST_TMP/err" || fail "no error line"
[[ -z $(ls -A "$TMPDIR") ]] || fail "failed verify left files in TMPDIR"

# the older generation is intact
"$CLI" -d v.db verify -g "$g1" | grep -qx "Verification: ok" || fail "verify -g g1"

# restore (default): stops at the last consistent transaction and says so
"$CLI" -d v.db restore -o "$TEST_TMP/partial.db" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
    fail "non-strict restore failed: $(cat "$TEST_TMP/err")"
[[ $(sha "$TEST_TMP/partial.db") == $(sha "$W/s2.db") ]] || fail "partial restore is not state s2"
grep -q "partial: *yes.*$key" "$TEST_TMP/out" || fail "no partial line: $(cat "$TEST_TMP/out")"
grep -q "warning: partial restore: .*$key" "$TEST_TMP/err" || fail "no warning: $(cat "$TEST_TMP/err")"

# restore --strict fails and leaves the output alone
echo keep >"$TEST_TMP/strict.db"
rc=0
"$CLI" -d v.db restore --strict --force -o "$TEST_TMP/strict.db" >/dev/null 2>"$TEST_TMP/err" ||
    rc=$?
[[ $rc == 1 ]] || fail "strict restore: exit $rc"
grep -q "error: .*$key" "$TEST_TMP/err" || fail "strict error does not name $key: $(cat "$TEST_TMP/err")"
[[ $(cat "$TEST_TMP/strict.db") == keep ]] || fail "strict restore touched the output"

# --- a missing batch: verify fails naming the gap, restore stops before it ---
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db gap.db --workdir "$TEST_TMP/gap" \
    gen:$T1 "sql:CREATE TABLE t(a)" ship:$((T1 + 1)) save:s1 "sql:INSERT INTO t VALUES (1)" \
    ship:$((T1 + 2)) "sql:INSERT INTO t VALUES (2)" ship:$((T1 + 3)) genid:g ||
    fail "bucketgen (gap) failed"
gg=$(cat "$TEST_TMP/gap/g.gen")
key=$(awss3 s3 ls "s3://$bucket/gap.db-$gg/" | awk '{print $4}' | grep -E '^[0-9]{12}-' | sed -n 2p)
awss3 s3 rm "s3://$bucket/gap.db-$gg/$key"
rc=0
out=$("$CLI" -d gap.db verify 2>/dev/null) || rc=$?
[[ $rc == 1 ]] || fail "verify with a missing batch: exit $rc"
grep -q "^Verification failed: .*missing batch" <<<"$out" || fail "verify output: $out"
"$CLI" -d gap.db restore -o "$TEST_TMP/gap.db" >/dev/null 2>"$TEST_TMP/err" || fail "restore (gap)"
grep -q "warning: partial restore: .*missing batch" "$TEST_TMP/err" || fail "no gap warning"
[[ $(sha "$TEST_TMP/gap.db") == $(sha "$TEST_TMP/gap/s1.db") ]] || fail "gap restore is not s1"
note "ok"
