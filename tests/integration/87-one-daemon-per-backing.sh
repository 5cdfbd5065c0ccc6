#!/usr/bin/env bash
# 87-one-daemon-per-backing: a BACKING_DIR is served by one daemon at a time (a flock on
# BACKING_DIR/.bottomless/lock). (1) A second mount of the same BACKING_DIR elsewhere fails at
# once, naming the first daemon's pid and mountpoint, and mounts nothing; the first mount keeps
# working. Before, both mounted and would have staged and uploaded the same databases twice.
# (2) A mount right after `fusermount3 -u`, while the old daemon is still uploading (its S3 answers
# 503 through a fault proxy, so its flush lasts flush_timeout), waits for the old daemon to exit
# and then mounts (talking to S3 directly); it uploads what the old one could not, and the
# restore equals the database.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt M2=$TEST_TMP/mnt2
mkdir -p "$B" "$M" "$M2"

# --- (1) a second daemon on the same BACKING_DIR --------------------------------------------
MODE=$TEST_TMP/mode
echo ok >"$MODE"
PROXY=$(faultproxy_start "$MODE")
mount_fs "$B" "$M" -o flush_timeout=4,endpoint="$PROXY"
OLD=$BFS_FS_PID
repl_insert "$M/app.db" 30 || fail "app on the first mount"
rc=0
timeout 30 "$BFS_BIN/bottomlessfs" -f "$B" "$M2" >"$TEST_TMP/second.out" 2>&1 </dev/null || rc=$?
((rc == 1)) || fail "second daemon: exit $rc, want 1: $(cat "$TEST_TMP/second.out")"
grep -q "already served by bottomlessfs pid $OLD at $M " "$TEST_TMP/second.out" ||
    fail "second daemon's message: $(cat "$TEST_TMP/second.out")"
! fs_is_mounted "$M2" || fail "the second daemon mounted $M2"
repl_insert "$M/app.db" 30 || fail "the first mount stopped working"
repl_wait_synced 60 "$M" app.db
note "second daemon refused"

# --- (2) a mount while the previous daemon still uploads after its unmount --------------------
echo 503 >"$MODE" # the old daemon's S3 fails from here on
exec {hold}> >(sqlite3 "$M/app.db" >/dev/null 2>&1) # keep the -wal: one generation throughout
echo "pragma journal_mode=wal; select 1;" >&"$hold"
repl_insert "$M/app.db" 40 || fail "app while S3 fails"
exec {hold}>&-
wait_until 20 fusermount3 -u "$M" # once the sqlite3 shell has let go of the files
kill -0 "$OLD" 2>/dev/null || fail "the old daemon exited at once (its flush should wait for S3)"
t0=$(date +%s%N)
mount_fs "$B" "$M" # S3 directly; waits for the old daemon first
NEW=$BFS_FS_PID
waited_ms=$((($(date +%s%N) - t0) / 1000000))
! kill -0 "$OLD" 2>/dev/null || [[ $(awk '{ print $3 }' "/proc/$OLD/stat" 2>/dev/null) == Z ]] ||
    fail "the new daemon mounted while the old one (pid $OLD) was still running"
grep -q "waiting up to .* for bottomlessfs pid $OLD to finish the uploads of its unmount" \
    "$BFS_FS_LOG" || { cat "$BFS_FS_LOG" >&2; fail "the new daemon did not say it waited"; }
note "the new daemon waited ${waited_ms} ms for pid $OLD"
want=$(sha3 "$M/app.db")
[[ $(sqlite3 "$M/app.db" "select count(*) from t") == 100 ]] || fail "rows on the new mount"
repl_wait_synced 90 "$M" app.db
unmount_fs "$M"
kill -0 "$NEW" 2>/dev/null && fail "new daemon still running after unmount_fs"
cli -d app.db restore --strict -o "$TEST_TMP/r.db" >/dev/null || fail "restore"
[[ $(sha3 "$TEST_TMP/r.db") == "$want" ]] || fail "restore differs from the database"
note "ok"
