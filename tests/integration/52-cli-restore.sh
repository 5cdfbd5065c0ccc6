#!/usr/bin/env bash
# 52-cli-restore: `bottomless-cli restore` of a bucket built from a real database: newest (to
# the default ./<name>), -g GEN, -u UTC_TIME (point in time, exact state), each compared with
# the source state by `sqlite3 .sha3sum` and integrity_check; refuses to overwrite a non-empty
# file without --force (which then replaces it and removes stale -wal/-shm); the default output
# of an escaped name stays in the current directory.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GENPY=$BFS_ROOT/tests/integration/59-cli-bucketgen.py
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
W=$TEST_TMP/w
mkdir -p "$W" "$TEST_TMP/w2" "$TEST_TMP/cwd"

T1=1700000000 T2=1700086400 T3=1700172800
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db app.db --workdir "$W" \
    gen:$T1 "sql:CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB)" \
    "sql:INSERT INTO t(b, c) VALUES ('one', randomblob(3000)), ('two', randomblob(70))" \
    ship:$((T1 + 10)) save:s1 \
    "sql:INSERT INTO t(b, c) SELECT b || '+', randomblob(2000) FROM t" \
    "sql:CREATE INDEX tb ON t(b)" ship:$((T1 + 20)):gz save:s2 genid:g1 \
    gen:$T2:zstd "sql:UPDATE t SET c = randomblob(5000) WHERE a % 2 = 0" ship:$((T2 + 10)) \
    save:s3 genid:g2 \
    gen:$T3:none "sql:INSERT INTO t(b, c) SELECT 'x' || a, zeroblob(100) FROM t" \
    ship:$((T3 + 10)):raw save:s4 \
    "sql:DELETE FROM t WHERE a < 3" "sql:INSERT INTO t(b) VALUES ('last')" \
    ship:$((T3 + 20)) save:s5 genid:g3 || fail "bucketgen failed"
g1=$(cat "$W/g1.gen") g2=$(cat "$W/g2.gen") g3=$(cat "$W/g3.gen")

sha() { sqlite3 "$1" .sha3sum; }
check_equal() { # check_equal RESTORED STATE
    [[ $(sqlite3 "$1" 'PRAGMA integrity_check') == ok ]] || fail "$1: integrity_check failed"
    [[ $(sha "$1") == $(sha "$W/$2.db") ]] || fail "$1 differs from state $2"
}
for s in s1 s2 s3 s4 s5; do # the states really differ, so the comparisons mean something
    for u in s1 s2 s3 s4 s5; do
        [[ $s == "$u" || $(sha "$W/$s.db") != $(sha "$W/$u.db") ]] || fail "$s == $u"
    done
done

# --- newest, to the default output ./app.db ---
out=$(cd "$TEST_TMP/cwd" && "$CLI" -d app.db restore) || fail "restore failed"
note "$out"
check_equal "$TEST_TMP/cwd/app.db" s5
grep -qx "Verification: ok" <<<"$out" || fail "no 'Verification: ok'"
grep -qE "^  generation: +$g3 \(created: 2023-11-16T22:13:20\+00:00\)$" <<<"$out" ||
    fail "restore did not name generation $g3"
grep -qE "^  snapshot: +app\.db-$g2/db\.zstd$" <<<"$out" || fail "restore did not name the snapshot"
grep -qE "^  transactions: +4$" <<<"$out" || fail "restore: want 4 transactions (1 in g2, 3 in g3)"
grep -qE "^  frames: +[1-9][0-9]*$" <<<"$out" || fail "restore: no frame count"
size=$(stat -c %s "$TEST_TMP/cwd/app.db")
grep -qE "^  size: +$size bytes" <<<"$out" || fail "restore: size line (want $size)"

# --- -g: older generations, whole ---
"$CLI" -d app.db restore -g "$g2" -o "$TEST_TMP/g2.db" >/dev/null || fail "restore -g g2"
check_equal "$TEST_TMP/g2.db" s3
"$CLI" -d app.db restore -g "$g1" -o "$TEST_TMP/g1.db" >/dev/null || fail "restore -g g1"
check_equal "$TEST_TMP/g1.db" s2

# --- -u: point in time ---
"$CLI" -d app.db restore -u 2023-11-16T22:13:35Z -o "$TEST_TMP/pit1.db" >/dev/null ||
    fail "restore -u T3+15"
check_equal "$TEST_TMP/pit1.db" s4
"$CLI" -d app.db restore -u "$(date -u -d @$((T1 + 15)) +%Y-%m-%dT%H:%M:%S)" \
    -o "$TEST_TMP/pit2.db" >/dev/null || fail "restore -u T1+15"
check_equal "$TEST_TMP/pit2.db" s1
"$CLI" -d app.db restore -u 2023-11-15T23:00:00 -o "$TEST_TMP/pit3.db" >/dev/null ||
    fail "restore -u between generations"
check_equal "$TEST_TMP/pit3.db" s3
rc=0
"$CLI" -d app.db restore -u 2023-01-01 -o "$TEST_TMP/pit4.db" 2>"$TEST_TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "restore before the first generation: exit $rc"
grep -q "bottomless-cli: error: " "$TEST_TMP/err" || fail "no error line: $(cat "$TEST_TMP/err")"
[[ ! -e $TEST_TMP/pit4.db ]] || fail "failed restore created the output"

# --- refuses to overwrite a non-empty file; --force replaces it ---
before=$(sha "$TEST_TMP/g1.db")
rc=0
"$CLI" -d app.db restore -o "$TEST_TMP/g1.db" 2>"$TEST_TMP/err" || rc=$?
[[ $rc == 1 ]] || fail "overwrite without --force: exit $rc"
grep -q "refusing to overwrite" "$TEST_TMP/err" || fail "message: $(cat "$TEST_TMP/err")"
grep -q "hint: .*--force" "$TEST_TMP/err" || fail "no --force hint: $(cat "$TEST_TMP/err")"
[[ $(sha "$TEST_TMP/g1.db") == "$before" ]] || fail "refused restore changed the file"
echo stale >"$TEST_TMP/g1.db-wal"
echo stale >"$TEST_TMP/g1.db-shm"
"$CLI" -d app.db restore --force -o "$TEST_TMP/g1.db" >/dev/null || fail "restore --force"
[[ ! -e $TEST_TMP/g1.db-wal && ! -e $TEST_TMP/g1.db-shm ]] || fail "stale -wal/-shm left"
check_equal "$TEST_TMP/g1.db" s5
: >"$TEST_TMP/empty.db" # an existing empty file may be overwritten
"$CLI" -d app.db restore -o "$TEST_TMP/empty.db" >/dev/null || fail "restore over empty file"
check_equal "$TEST_TMP/empty.db" s5

# --- errors: missing output directory; progress bar only on a terminal ---
rc=0
"$CLI" -d app.db restore -o "$TEST_TMP/no/such/dir/x.db" 2>"$TEST_TMP/err" >/dev/null || rc=$?
[[ $rc == 1 ]] && grep -q "output directory $TEST_TMP/no/such/dir does not exist" "$TEST_TMP/err" ||
    fail "missing output directory: exit $rc $(cat "$TEST_TMP/err")"
"$CLI" -d app.db restore -o "$TEST_TMP/notty.db" >/dev/null 2>"$TEST_TMP/err" || fail "restore"
[[ ! -s $TEST_TMP/err ]] || fail "stderr not a tty but got: $(cat "$TEST_TMP/err")"
script -qec "'$CLI' -d app.db restore -o '$TEST_TMP/tty.db'" /dev/null >"$TEST_TMP/tty.out" ||
    fail "restore on a pty failed: $(cat "$TEST_TMP/tty.out")"
grep -aqE "restore \[[#-]+\] .*B / .*B/s +(ETA|in) " "$TEST_TMP/tty.out" ||
    fail "no progress bar on a terminal: $(od -c "$TEST_TMP/tty.out" | head)"
check_equal "$TEST_TMP/tty.db" s5

# --- an escaped name restores to its last component, in the current directory ---
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db 'sub%2Fdir%2Fnested.db' --workdir "$TEST_TMP/w2" \
    gen:$T1 "sql:CREATE TABLE n(x)" "sql:INSERT INTO n VALUES (42)" ship save:n ||
    fail "bucketgen (nested) failed"
(cd "$TEST_TMP/cwd" && "$CLI" -d 'sub%2Fdir%2Fnested.db' restore >/dev/null) ||
    fail "restore of an escaped name"
[[ -f $TEST_TMP/cwd/nested.db ]] || fail "default output of sub/dir/nested.db is not ./nested.db"
[[ $(sha "$TEST_TMP/cwd/nested.db") == $(sha "$TEST_TMP/w2/n.db") ]] || fail "nested.db differs"
# -d also takes the path relative to the mount and maps it to the name
"$CLI" -d sub/dir/nested.db restore -o "$TEST_TMP/nested2.db" >/dev/null || fail "restore -d path"
[[ $(sha "$TEST_TMP/nested2.db") == $(sha "$TEST_TMP/w2/n.db") ]] || fail "nested2.db differs"
note "ok"
