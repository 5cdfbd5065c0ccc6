#!/usr/bin/env bash
# 54-cli-rm: `bottomless-cli rm`. -g removes every object of a generation, also past the first
# listing page (1000 keys); a generation of the newest restorable chain is refused without
# --force; --dry-run removes nothing; --older-than removes the old generations but keeps the
# newest chain (newest generation and its .dep chain back to the snapshot), and the database
# still restores equal to the source (sqlite3 .sha3sum).
# timeout: 900
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GENPY=$BFS_ROOT/tests/integration/59-cli-bucketgen.py
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
W=$TEST_TMP/w
mkdir -p "$W"

T0=1699900000 T1=1700000000 T2=1700086400 T3=1700172800 T4=1700259200
# g0 (no dep) | g1 -> (nothing) | g2 snapshot, dep g1 | g3 dep g2 | g4 dep g3 (newest)
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db r.db --workdir "$W" \
    gen:$T0 "sql:CREATE TABLE t(a INTEGER PRIMARY KEY, b)" ship genid:g0 \
    gen:$T1:none:nodep "sql:INSERT INTO t(b) VALUES (randomblob(900))" ship genid:g1 \
    gen:$T2:zstd "sql:INSERT INTO t(b) VALUES (randomblob(1900))" ship genid:g2 \
    gen:$T3:none "sql:UPDATE t SET b = 'x' WHERE a = 1" ship genid:g3 \
    gen:$T4:none "sql:INSERT INTO t(b) VALUES ('newest')" ship save:final genid:g4 ||
    fail "bucketgen failed"
for g in g0 g1 g2 g3 g4; do declare "$g=$(cat "$W/$g.gen")"; done
count() { # objects under a generation, all listing pages (awscli paginates by itself)
    awss3 s3 ls --recursive "s3://$bucket/r.db-$1/" | wc -l
}

# many objects in g0 so that its listing has more than one page
/usr/bin/python3 - "$bucket" "r.db-$g0/" <<'EOF'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3", endpoint_url=os.environ["BFS_S3_ENDPOINT"])
with ThreadPoolExecutor(8) as ex:
    list(ex.map(lambda i: s3.put_object(Bucket=sys.argv[1], Key=f"{sys.argv[2]}zz-extra-{i:05d}", Body=b"x"), range(1010)))
EOF
n=$(count "$g0")
((n > 1010)) || fail "setup: g0 has only $n objects"

# --- --dry-run ---
out=$("$CLI" -d r.db rm -g "$g0" --dry-run) || fail "rm --dry-run failed"
grep -q "Would remove generation $g0 ($n objects)" <<<"$out" || fail "dry-run output: $(tail -3 <<<"$out")"
[[ $(count "$g0") == "$n" ]] || fail "--dry-run removed objects"

# --- -g: every page ---
out=$("$CLI" -d r.db rm -g "$g0" -v) || fail "rm -g g0 failed"
grep -qxF "Removing r.db-$g0/.meta" <<<"$out" || fail "rm -v does not list .meta"
grep -qxF "Removed generation $g0 ($n objects)" <<<"$out" || fail "rm -g summary: $(tail -2 <<<"$out")"
[[ $(count "$g0") == 0 ]] || fail "g0 still has $(count "$g0") objects"
"$CLI" -d r.db ls | grep -q "$g0" && fail "ls still shows g0"

# --- the newest chain is protected ---
for g in "$g4" "$g3" "$g2"; do
    rc=0
    "$CLI" -d r.db rm -g "$g" 2>"$TEST_TMP/err" >/dev/null || rc=$?
    [[ $rc == 1 ]] || fail "rm -g of chain generation $g: exit $rc"
    grep -q "refusing to remove generation $g" "$TEST_TMP/err" || fail "$(cat "$TEST_TMP/err")"
    grep -q "hint: .*--force" "$TEST_TMP/err" || fail "no --force hint"
    (($(count "$g") > 0)) || fail "refused rm removed objects of $g"
done
rc=0
"$CLI" -d r.db rm -g "$g0" 2>"$TEST_TMP/err" >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -q "not found" "$TEST_TMP/err" || fail "rm -g of a removed generation: exit $rc"

# --- --older-than: removes g1, keeps g2 g3 (chain of g4) ---
out=$("$CLI" -d r.db rm --older-than 2023-11-17) || fail "rm --older-than failed"
note "$out"
grep -qx "Removed generation $g1 ([0-9]* objects)" <<<"$out" || fail "g1 not removed"
grep -q "Kept generation $g2" <<<"$out" || fail "g2 not reported kept"
grep -q "Kept generation $g3" <<<"$out" || fail "g3 not reported kept"
grep -qx "Removed 1 generation ([0-9]* objects) of r.db, kept 2" <<<"$out" || fail "summary line"
[[ $(count "$g1") == 0 ]] || fail "g1 objects left"
[[ $("$CLI" -d r.db ls | cut -d' ' -f1) == "$g4
$g3
$g2" ]] || fail "remaining generations: $("$CLI" -d r.db ls)"

"$CLI" -d r.db restore -o "$TEST_TMP/after.db" >/dev/null || fail "restore after rm failed"
[[ $(sqlite3 "$TEST_TMP/after.db" .sha3sum) == $(sqlite3 "$W/final.db" .sha3sum) ]] ||
    fail "restore after rm differs from the source"
[[ $(sqlite3 "$TEST_TMP/after.db" 'PRAGMA integrity_check') == ok ]] || fail "integrity"

# --- --force removes chain generations too ---
"$CLI" -d r.db rm --older-than 2023-11-17 --force >/dev/null 2>"$TEST_TMP/err" ||
    fail "rm --force failed"
grep -q "warning: generation $g4 has no snapshot and depends on the removed generation $g3" \
    "$TEST_TMP/err" || fail "no warning about the orphaned newest generation: $(cat "$TEST_TMP/err")"
[[ $(count "$g2") == 0 && $(count "$g3") == 0 ]] || fail "--force kept chain generations"
(($(count "$g4") > 0)) || fail "--older-than removed the newer generation g4"
note "ok"
