#!/usr/bin/env bash
# 31-restore-pitr: point-in-time restore returns exactly the state at T: the newest generation
# created at or before T, and only batches with ts <= T (mkbucket stamps batch i with
# BASE + i*100 and saves the logical state after each SQL file).
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

MK=$BFS_BIN/tools/mkbucket
RT=$BFS_BIN/tools/restoretool
B=$(new_bucket)
W=$TEST_TMP
sha() { sqlite3 "$1" .sha3sum; }
field() { sed -n "s/^$2: //p" "$1"; }
utc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S; }

for i in 1 2 3 4 5; do
    echo "INSERT INTO t(v) VALUES ('step$i'); INSERT INTO t(v) SELECT v || '+$i' FROM t;" >"$W/s$i.sql"
done
src=$W/src.db
sqlite3 "$src" "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
sha0=$(sha "$src")
BASE=1700000000
mkdir -p "$W/a" "$W/b"
# gen A created BASE-50: batches at BASE, BASE+100, BASE+200
gA=$("$MK" -b "$B" -n db -D "$src" --created $((BASE - 50)) --ts $BASE --ts-step 100 --state-dir "$W/a" "$W/s1.sql" "$W/s2.sql" "$W/s3.sql")
# gen B created BASE+250 (dep -> A, no snapshot): batches at BASE+300, BASE+400
gB=$("$MK" -b "$B" -n db -D "$src" --no-snapshot --parent "$gA" --created $((BASE + 250)) --ts $((BASE + 300)) --ts-step 100 --state-dir "$W/b" "$W/s4.sql" "$W/s5.sql")

check() { # check T EXPECTED_SHA EXPECTED_GEN LABEL
    "$RT" -b "$B" -n db -o "$W/pitr.db" -u "$(utc "$1")" >"$W/pitr.out" || fail "$4: restore failed"
    [[ $(field "$W/pitr.out" generation) == "$3" ]] || fail "$4: generation $(field "$W/pitr.out" generation), want $3"
    [[ $(field "$W/pitr.out" partial) == 0 ]] || fail "$4: partial"
    [[ $(sha "$W/pitr.db") == "$2" ]] || fail "$4: content is not the state at T"
    [[ $(sqlite3 "$W/pitr.db" 'PRAGMA integrity_check') == ok ]] || fail "$4: integrity"
    note "$4 ok"
}
check $((BASE - 10)) "$sha0" "$gA" "before the first batch"
check $BASE "$(sha "$W/a/state-1.db")" "$gA" "exactly at batch 1"
check $((BASE + 99)) "$(sha "$W/a/state-1.db")" "$gA" "between batch 1 and 2"
check $((BASE + 100)) "$(sha "$W/a/state-2.db")" "$gA" "exactly at batch 2"
check $((BASE + 249)) "$(sha "$W/a/state-3.db")" "$gA" "end of gen A"
check $((BASE + 299)) "$(sha "$W/a/state-3.db")" "$gB" "gen B start (no batch yet)"
check $((BASE + 300)) "$(sha "$W/b/state-1.db")" "$gB" "gen B batch 1"
check $((BASE + 100000)) "$(sha "$W/b/state-2.db")" "$gB" "far future"
[[ $(sha "$W/b/state-2.db") == "$(sha "$src")" ]] || fail "final state mismatch"

# before any generation: clear error
if "$RT" -b "$B" -n db -o "$W/x.db" -u "$(utc $((BASE - 100)))" 2>"$W/x.err"; then
    fail "restore before the first generation succeeded"
fi
grep -q "no generation of database db created at or before" "$W/x.err" || fail "msg: $(cat "$W/x.err")"

# tombstone: generations created at or before it are gone for restore
python3 - "$W/tomb" <<'PY'
import struct, sys
open(sys.argv[1], "wb").write(struct.pack(">q", 1700000000 + 250))
PY
awss3 s3 cp "$W/tomb" "s3://$B/db.tombstone" >/dev/null
if "$RT" -b "$B" -n db -o "$W/t.db" 2>"$W/t.err"; then fail "tombstoned restore succeeded"; fi
grep -q "tombstoned" "$W/t.err" || fail "tombstone msg: $(cat "$W/t.err")"
note "pitr ok"
