#!/usr/bin/env bash
# 67-repl-rename: renaming a database through the mount moves it to the new db_name (fresh
# generation, restorable, equal to the local file) and tombstones the old name; renaming a
# directory moves the databases below it; a rename over a database tombstones the one
# replaced; deleting a database tombstones it; a database renamed and then left alone is
# uploaded without a write; mv of a bucket-only database restores it first; a database
# renamed over one the bucket holds, or restored into the live mount, replaces it there.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1

mkdb() { # PATH ROWS
    sqlite3 "$1" "pragma journal_mode=wal; create table if not exists t(a); $(for ((i = 0; i < $2; i++)); do printf 'insert into t values (%d);' "$i"; done)" >/dev/null
}
restorable() { # DB_NAME OUT
    rm -f "$2"
    cli -d "$1" restore -o "$2" >/dev/null 2>&1
}

mkdir -p "$M/d1"
mkdb "$M/a.db" 10
mkdb "$M/d1/x.db" 20
mkdb "$M/victim.db" 5
mkdb "$M/gone.db" 3
repl_wait_synced 60 "$M"
restorable a.db "$TEST_TMP/a0.db" || fail "a.db not in the bucket"

mv "$M/a.db" "$M/b.db"
mv "$M/d1" "$M/d2"
mv "$M/b.db" "$M/victim.db" # over an existing database
rm "$M/gone.db"
sqlite3 "$M/victim.db" "insert into t values (100);"
sqlite3 "$M/d2/x.db" "insert into t values (200);"
repl_wait_synced 90 "$M" victim.db d2/x.db

restorable victim.db "$TEST_TMP/v.db" || fail "victim.db (renamed a.db) not restorable"
[[ $(sha3 "$TEST_TMP/v.db") == $(sha3 "$M/victim.db") ]] || fail "victim.db restore differs"
[[ $(sqlite3 "$TEST_TMP/v.db" "select count(*) from t") == 11 ]] || fail "victim.db holds the old victim"
restorable d2%2Fx.db "$TEST_TMP/x.db" || fail "d2/x.db not restorable"
[[ $(sha3 "$TEST_TMP/x.db") == $(sha3 "$M/d2/x.db") ]] || fail "d2/x.db restore differs"
for old in a.db b.db d1%2Fx.db gone.db; do
    wait_until 30 bash -c "! '$BFS_BIN/bottomless-cli' -e '$BFS_S3_ENDPOINT' -b '$BUCKET' -d '$old' restore -o '$TEST_TMP/old.db' -f"
done
[[ -n $(awss3 s3 ls "s3://$BUCKET/gone.db.tombstone") ]] || fail "no tombstone for gone.db"
unmount_fs "$M"

# an empty backing dir shows exactly the live databases
B2=$TEST_TMP/back2
mkdir -p "$B2"
mount_fs "$B2" "$M"
(cd "$M" && find . -name '*.db' | sort) >"$TEST_TMP/list"
diff <(printf './d2/x.db\n./victim.db\n') "$TEST_TMP/list" || fail "lazy listing after renames"
unmount_fs "$M"

# a database renamed and then left alone reaches the bucket without a write (before, it had no
# generation until its next commit: it vanished from the bucket's live view, its old name
# tombstoned); mv of a database listed from the bucket but not restored yet restores it, then
# renames it (it failed with ENOENT)
mount_fs "$B" "$M" -o batch_interval=1
want=$(sha3 "$M/victim.db")
mv "$M/victim.db" "$M/quiet.db"
wait_until 60 restorable quiet.db "$TEST_TMP/q.db"
[[ $(sha3 "$TEST_TMP/q.db") == "$want" ]] || fail "quiet.db (renamed, not written) differs"
unmount_fs "$M"
B3=$TEST_TMP/back3
mkdir -p "$B3"
mount_fs "$B3" "$M" -o batch_interval=1
wait_until 30 test -e "$M/quiet.db"
mv "$M/quiet.db" "$M/moved.db" || fail "mv of a bucket-only database failed"
[[ $(sha3 "$M/moved.db") == "$want" ]] || fail "moved.db differs"
[[ ! -e $M/quiet.db ]] || fail "quiet.db still there after mv"
wait_until 60 restorable moved.db "$TEST_TMP/m.db"
[[ $(sha3 "$TEST_TMP/m.db") == "$want" ]] || fail "moved.db in the bucket differs"
unmount_fs "$M"

# mv over a database the bucket holds, nobody writing either afterwards (the atomic replace
# cp x .app.db.tmp && mv .app.db.tmp app.db does this): the bucket restores the new file, and
# says so only once it does (before, nothing uploaded it and restore returned the old one
# while the status said synced). Then an operator's rollback, a restore into the live mount
# (bottomless-cli writes a temporary file and renames it into place): the bucket follows it,
# the temporary name leaves no tombstone, and bottomlessfs -u is done at once (it waited its
# whole flush_timeout for the temporary file, then failed).
B4=$TEST_TMP/back4
mkdir -p "$B4"
mount_fs "$B4" "$M" -o batch_interval=1
mkdb "$M/over.db" 3
mkdb "$M/repl.db" 7
repl_wait_synced 60 "$M"
mv "$M/repl.db" "$M/over.db"
want=$(sha3 "$M/over.db")
repl_wait_synced 60 "$M" over.db
restorable over.db "$TEST_TMP/o1.db" || fail "over.db: restore after mv over failed"
[[ $(sha3 "$TEST_TMP/o1.db") == "$want" ]] ||
    fail "over.db: the bucket restores the replaced database ($(sqlite3 "$TEST_TMP/o1.db" 'select count(*) from t') rows, want 7)"
sqlite3 "$M/over.db" "insert into t values (1000)"
repl_wait_synced 60 "$M" over.db
g=$(gens over.db | head -n 1)
sqlite3 "$M/over.db" "insert into t values (1001)"
repl_wait_synced 60 "$M" over.db
cli -d over.db restore -g "$g" --force -o "$M/over.db" >/dev/null 2>&1 || fail "rollback restore failed"
want=$(sha3 "$M/over.db")
[[ $(sqlite3 "$M/over.db" "select max(a) from t") == 1000 ]] || fail "the rollback did not land"
repl_wait_synced 60 "$M" over.db
restorable over.db "$TEST_TMP/o2.db" || fail "over.db: restore after the rollback failed"
[[ $(sha3 "$TEST_TMP/o2.db") == "$want" ]] || fail "over.db: the bucket did not follow the rollback"
t0=$(date +%s)
"$BFS_BIN/bottomlessfs" -u "$M" >/dev/null || fail "bottomlessfs -u failed after the rollback"
fs_reap "$M"
(($(date +%s) - t0 < 20)) || fail "bottomlessfs -u took $(($(date +%s) - t0)) s after the rollback"
awss3 s3 ls "s3://$BUCKET/" | grep -q 'restore-.*tombstone' &&
    fail "a tombstone for the restore's temporary file: $(awss3 s3 ls "s3://$BUCKET/" | grep restore-)"
note ok
