#!/usr/bin/env bash
# 84-unmount-outage: unmounting while S3 is down. Transactions committed during the outage
# cannot be uploaded: the daemon waits flush_timeout, says what it could not upload (db= and
# frames), exits, and keeps them in BACKING_DIR/.bottomless; the database itself is intact.
# bottomlessfs -u waits for that and exits 1 saying what stays staged (also when -o fsname
# hides BACKING_DIR from the mount table).
# The next mount, with S3 back, uploads them and the restore equals the local database.
# (README "Guarantees", unmount.)
# timeout: 300
# serial: it stops the shared S3 server
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
# -o fsname: the mount's source does not name BACKING_DIR, -u finds it in the status file
# (before, it unmounted without waiting and exited 0: "no replicating daemon found")
mount_fs "$B" "$M" -o batch_interval=1,flush_timeout=3,fsname=mydata
LOG1=$BFS_FS_LOG

touch "$TEST_TMP/t0" # staging files newer than this were written by the test
# keep one connection open for the whole test: the WAL is not deleted at a close, so the
# commits made during the outage stay in one generation that the next mount must finish
exec {hold}> >(sqlite3 "$M/app.db" >/dev/null 2>&1)
echo "pragma journal_mode=wal; select 1;" >&"$hold"
repl_insert "$M/app.db" 50
repl_wait_synced 60 "$M" app.db
before=$(sqlite3 "$M/app.db" "select count(*) from t")

swift_stop_proxy
repl_insert "$M/app.db" 40 || fail "the app failed while S3 was down"
exec {hold}>&-
sum=$(sha3 "$M/app.db")
count=$(sqlite3 "$M/app.db" "select count(*) from t")
((count == before + 40)) || fail "local database has $count rows, want $((before + 40))"

# unmount with S3 down: bounded wait, a clear message, staging kept; bottomlessfs -u waits
# for the daemon and says (exit 1) that not everything reached S3
pid=$BFS_FS_PID
t0=$SECONDS
rc=0
"$BFS_BIN/bottomlessfs" -u "$M" >"$TEST_TMP/u.out" 2>"$TEST_TMP/u.err" || rc=$?
note "bottomlessfs -u: exit $rc after $((SECONDS - t0)) s: $(cat "$TEST_TMP/u.err")"
((rc == 1)) || fail "bottomlessfs -u exited $rc with uploads left (want 1)"
grep -q "not everything committed reached S3 .* staged in $B/.bottomless" "$TEST_TMP/u.err" ||
    fail "bottomlessfs -u did not say what was left: $(cat "$TEST_TMP/u.err")"
[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo gone) =~ ^(Z|gone)$ ]] ||
    fail "bottomlessfs -u returned while the daemon still ran"
fs_reap "$M"
note "daemon exited $((SECONDS - t0)) s after the unmount"
((SECONDS - t0 <= 40)) || fail "the daemon took $((SECONDS - t0)) s to exit with flush_timeout=3"
grep -E "unmount flush incomplete .*staging kept in" "$LOG1" >&2 ||
    fail "no 'flush incomplete ... staging kept' line: $(tail -5 "$LOG1")"
grep -qE "replica: not uploaded db=app\.db " "$LOG1" || fail "no 'not uploaded db=app.db' line"
[[ -n $(find "$B/.bottomless" -type f ! -name lock -newer "$TEST_TMP/t0" | head -1) ]] ||
    fail "nothing kept in the staging directory"
[[ $(sqlite3 "$B/app.db" "select count(*) from t") == "$count" ]] || fail "backing db lost rows"

# S3 back, mount again: the backlog is uploaded and the restore is exact
swift_start_proxy
mount_fs "$B" "$M" -o batch_interval=1
repl_wait_synced 120 "$M" app.db
unmount_fs "$M"
cli -d app.db restore -o "$TEST_TMP/r.db" >/dev/null || fail "restore failed"
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "restore differs from the local database"
[[ $(sqlite3 "$TEST_TMP/r.db" "select count(*) from t") == "$count" ]] || fail "restore lacks rows"
note "ok: $count rows, $((count - before)) of them committed during the outage"
