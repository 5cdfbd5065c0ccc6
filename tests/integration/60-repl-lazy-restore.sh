#!/usr/bin/env bash
# 60-repl-lazy-restore: a WAL database written through the mount (1,000 transactions from
# Python's sqlite3) reaches the bucket (status file: lag 0); after unmount and on an EMPTY
# backing directory the database is listed (readdir, stat with its size), opening it restores
# it lazily with the same .sha3sum, the CLI restore of the bucket equals it too, and writes
# after the lazy restore continue in a new generation whose .dep names the restored one.
# Also: concurrent first opens share one restore; a deleted database is not listed, `cli ls`
# marks it deleted, and `restore --ignore-tombstone` still brings it back; an rm of a database
# only listed from the bucket tombstones it too.
# timeout: 400
# serial: it stops the shared S3 server
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B1=$TEST_TMP/back1 B2=$TEST_TMP/back2 M=$TEST_TMP/mnt
mkdir -p "$B1" "$B2" "$M"

mount_fs "$B1" "$M" -o batch_interval=1
note "mounted $B1 on $M, bucket $BUCKET"

"$PY" - "$M/app.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("create table t(id integer primary key, v text)")
for i in range(1000):
    c.execute("insert into t(v) values (?)", ("row-%d-" % i + "x" * (i % 200),))
assert c.execute("select count(*) from t").fetchone()[0] == 1000
c.close()
EOF
# a second database in a subdirectory, left open-closed in WAL mode with its -wal present
mkdir "$M/sub"
sqlite3 "$M/sub/other.db" "pragma journal_mode=wal; create table k(a); insert into k values (1),(2),(3);" >/dev/null
echo "not a database" >"$M/notes.txt"

sum=$(sha3 "$M/app.db")
sum_other=$(sha3 "$M/sub/other.db")
repl_wait_synced 120 "$M" app.db sub/other.db
repl_status "$M" | "$PY" -c '
import json, sys
st = json.load(sys.stdin)
d = {x["path"]: x for x in st["databases"]}
a = d["app.db"]
assert a["db_name"] == "app.db", a
assert a["journal_mode"] == "wal", a
assert a["protected"] is True, a
assert a["last_error"] == "" or a["last_error"] is not None
assert d["sub/other.db"]["db_name"] == "sub%2Fother.db", d
assert "notes.txt" not in d
' || fail "status file content"
size=$(stat -c %s "$B1/app.db")
unmount_fs "$M"
note "unmounted; generations of app.db: $(gens app.db | wc -l)"
[[ -n $(gens app.db) ]] || fail "no generation of app.db in the bucket"

# --- empty backing directory: lazy entries -----------------------------------------------------
rm -rf "$B1"
mount_fs "$B2" "$M" -o batch_interval=1,list_ttl=1
ls -A "$M" >"$TEST_TMP/ls"
grep -qx app.db "$TEST_TMP/ls" || { cat "$TEST_TMP/ls"; fail "app.db not listed on an empty backing dir"; }
grep -qx sub "$TEST_TMP/ls" || fail "directory of sub/other.db not listed"
grep -qx notes.txt "$TEST_TMP/ls" && fail "a non-database file was listed"
[[ -e $B2/app.db ]] && fail "listing restored the database"
vsize=$(stat -c %s "$M/app.db")
note "virtual size $vsize, original file size $size"
((vsize > 0)) || fail "virtual app.db has size 0"
ls "$M/sub" | grep -qx other.db || fail "sub/other.db not listed"

# two concurrent first opens: one restore, both see the data
"$PY" - "$M/app.db" <<'EOF' &
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("select count(*) from t").fetchone()[0] == 1000
EOF
p1=$!
got=$(sha3 "$M/app.db") || fail "opening the lazy database failed"
wait "$p1" || fail "concurrent opener failed"
[[ $got == "$sum" ]] || fail "lazy restore: sha3 $got != original $sum"
[[ -s $B2/app.db ]] || fail "restore did not land in the backing directory"
(($(grep -c "lazy: restore start db=app.db " "$BFS_FS_LOG") == 1)) ||
    fail "expected exactly one restore of app.db: $(grep 'lazy: restore' "$BFS_FS_LOG")"
[[ $(sha3 "$M/sub/other.db") == "$sum_other" ]] || fail "lazy restore of sub/other.db differs"
[[ $(sqlite3 "$M/app.db" "pragma integrity_check") == ok ]] || fail "integrity_check"

# CLI restore of the same bucket
cli -d app.db restore -o "$TEST_TMP/cli.db" >/dev/null || fail "CLI restore failed"
[[ $(sha3 "$TEST_TMP/cli.db") == "$sum" ]] || fail "CLI restore differs from the original"

# writes after a lazy restore: a new generation whose .dep is the restored one
restored_gen=$(gens app.db | head -n 1)
sqlite3 "$M/app.db" "insert into t(v) values ('after-restore');" >/dev/null
repl_wait_synced 120 "$M" app.db
new_gen=$(gens app.db | head -n 1)
[[ $new_gen != "$restored_gen" ]] || fail "no new generation after the lazy restore"
[[ $(dep_of app.db "$new_gen") == "$restored_gen" ]] ||
    fail "new generation $new_gen: .dep '$(dep_of app.db "$new_gen")' != restored $restored_gen"
sum2=$(sha3 "$M/app.db")
rm -f "$TEST_TMP/cli2.db"
cli -d app.db restore -o "$TEST_TMP/cli2.db" >/dev/null || fail "CLI restore 2 failed"
[[ $(sha3 "$TEST_TMP/cli2.db") == "$sum2" ]] || fail "CLI restore after new writes differs"

# deleting a database through the mount: not listed any more (tombstone), but its backup can
# still be restored on purpose (an accidental rm must not lose it)
repl_wait_synced 60 "$M"
osum=$(sha3 "$M/sub/other.db")
rm "$M/sub/other.db"
[[ -e $M/sub/other.db ]] && fail "deleted database still visible"
repl_wait_synced 60 "$M" app.db
unmount_fs "$M"
B3=$TEST_TMP/back3
mkdir -p "$B3"
mount_fs "$B3" "$M"
ls "$M" | grep -qx app.db || fail "app.db not listed on the third mount"
[[ -e $M/sub/other.db ]] && fail "tombstoned sub/other.db still listed"
cli ls | grep -q '^sub%2Fother.db  newest: .*, deleted at .*--ignore-tombstone' ||
    fail "cli ls does not mark sub/other.db deleted: $(cli ls)"
if cli -d sub/other.db restore -o "$TEST_TMP/other.db" 2>"$TEST_TMP/tomb.err"; then
    fail "a plain restore of a deleted database succeeded"
fi
grep -q "hint: the database was deleted .*--ignore-tombstone" "$TEST_TMP/tomb.err" ||
    fail "no --ignore-tombstone hint: $(cat "$TEST_TMP/tomb.err")"
cli -d sub/other.db restore --ignore-tombstone -o "$TEST_TMP/other.db" >/dev/null ||
    fail "restore --ignore-tombstone failed"
[[ $(sha3 "$TEST_TMP/other.db") == "$osum" ]] || fail "the deleted database came back different"
# a restore that cannot reach S3 fails the open with EIO and logs why; later it works
swift_stop_proxy
if out=$(sqlite3 "$M/app.db" "select count(*) from t" 2>&1); then
    fail "open of a lazy database succeeded with S3 down: $out"
fi
note "open with S3 down: $out"
grep -q "lazy: restore failed db=app.db" "$BFS_FS_LOG" || fail "no log line for the failed restore"
[[ -e $B3/app.db ]] && fail "a failed restore left a file behind"
swift_start_proxy
[[ $(sha3 "$M/app.db") == "$sum2" ]] || fail "restore after S3 came back differs"
unmount_fs "$M"

# rm of a database only listed from the bucket (never opened here) sticks: it gets a
# tombstone, and the next machine does not list it (before, it was hidden in that mount only)
B4=$TEST_TMP/back4 B5=$TEST_TMP/back5
mkdir -p "$B4" "$B5"
mount_fs "$B4" "$M"
wait_until 30 test -e "$M/app.db"
rm "$M/app.db" || fail "rm of a bucket-only database failed"
[[ -e $M/app.db ]] && fail "app.db still listed after rm"
tomb_there() { awss3 s3api head-object --bucket "$BUCKET" --key app.db.tombstone >/dev/null 2>&1; }
wait_until 30 tomb_there
"$BFS_BIN/bottomlessfs" -u "$M" >/dev/null || fail "-u after the rm failed"
fs_reap "$M"
mount_fs "$B5" "$M"
ls "$M" >/dev/null
[[ -e $M/app.db ]] && fail "the deleted bucket-only app.db came back on the next machine"
cli ls | grep -q '^app.db  newest: .*, deleted at ' || fail "cli ls does not mark app.db deleted"
unmount_fs "$M"
note "ok"
