#!/usr/bin/env bash
# 90-repl-writeback-unsynced: in writeback mode the daemon sees a -wal's pages only when the
# kernel hands them over, and SQLite makes it do so before each checkpoint only when it syncs
# the WAL (synchronous NORMAL or FULL). A checkpoint by a synchronous=OFF connection lets the
# kernel overwrite commits before the daemon saw them; the bucket then held a database without
# its table while the status file said lag 0. Now the daemon notices (a WAL restart with no
# fsync of the -wal before it, or a WAL whose checkpoint sequence skipped), says so in its log
# and status (last_error, lag, snapshot pending) for as long as the app keeps the database
# open, and takes a snapshot once the app closes it: the restore is then exact. Cases: one OFF
# connection; a NORMAL writer whose checkpoints a second, OFF connection runs; and a NORMAL
# control, which must be exact while still open and raise nothing.
# timeout: 300
# serial: it kills the daemon at a set time after a commit
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o writeback,batch_interval=1
LOG=$BFS_FS_LOG

# app DB MODE: writes DB through the mount and keeps it open until $TEST_TMP/close-DB exists.
# MODE off: one synchronous=OFF connection, 3,000 autocommit inserts (the WAL restarts at the
# 1,000-frame autocheckpoint). MODE ckpt-off: a NORMAL writer without autocheckpoint, whose
# WAL a second, OFF connection checkpoints every 300 inserts. MODE trunc-off: an OFF connection
# that runs wal_checkpoint(TRUNCATE) every 300 inserts (the truncation drops the -wal's dirty
# pages in the kernel). MODE normal: the control.
app() {
    "$PY" - "$M/$1" "$2" "$TEST_TMP/open-$1" "$TEST_TMP/close-$1" <<'EOF' &
import os, sqlite3, sys, time
db, mode, opened, close = sys.argv[1:]
w = sqlite3.connect(db, isolation_level=None)
w.execute("pragma journal_mode=wal")
w.execute("pragma synchronous=" + ("OFF" if mode in ("off", "trunc-off") else "NORMAL"))
w.execute("create table t(id integer primary key, v blob)")
if mode in ("ckpt-off", "trunc-off"):
    w.execute("pragma wal_autocheckpoint=0")
if mode == "ckpt-off":
    ck = sqlite3.connect(db, isolation_level=None)
    ck.execute("pragma synchronous=OFF")
for i in range(3000):
    w.execute("insert into t(v) values (randomblob(100))")
    if mode == "ckpt-off" and i % 300 == 299:
        ck.execute("pragma wal_checkpoint(PASSIVE)").fetchall()
    if mode == "trunc-off" and i % 300 == 299:
        w.execute("pragma wal_checkpoint(TRUNCATE)").fetchall()
open(opened, "w").close()
deadline = time.time() + 120
while not os.path.exists(close) and time.time() < deadline:
    time.sleep(0.05)
if mode == "ckpt-off":
    ck.close()
w.close()
EOF
    APP_PID=$!
}
status_of() { # DB FIELD
    "$PY" -c 'import json,sys
d = next(x for x in json.load(open(sys.argv[1]))["databases"] if x["path"] == sys.argv[2])
print(d[sys.argv[3]])' "$M/.bottomless/status" "$1" "$2"
}
check_restore() { # DB: the bucket's newest equals the local file
    local db=$1
    rm -f "$TEST_TMP/r-$db"
    cli -d "$db" restore -o "$TEST_TMP/r-$db" >/dev/null 2>&1 || fail "$db: restore failed"
    [[ $(sqlite3 "$TEST_TMP/r-$db" "pragma integrity_check") == ok ]] || fail "$db: restore is corrupt"
    [[ $(sqlite3 "$TEST_TMP/r-$db" "select count(*) from t") == 3000 ]] ||
        fail "$db: restore has $(sqlite3 "$TEST_TMP/r-$db" 'select count(*) from t' 2>&1) rows, not 3000"
    [[ $(sha3 "$TEST_TMP/r-$db") == $(sha3 "$M/$db") ]] || fail "$db: restore differs from the local file"
}

flagged() { [[ $(status_of "$1" last_error 2>/dev/null) == *"synchronous=OFF"* ]]; }
for mode in off ckpt-off trunc-off; do
    db=$mode.db
    app "$db" "$mode"
    wait_until 60 test -e "$TEST_TMP/open-$db"
    # While the app has it open, the status says the bucket is not known to match, and why.
    # Or, when the daemon saw no WAL that could have hidden commits (its truncations dropped
    # every one unseen, and the checkpoints put them all in the database file), it may say
    # synced: then the bucket must hold exactly what the app committed. The first mode always
    # restarts its WAL, which the daemon always sees: it must be flagged.
    is_flagged=0
    for _ in $(seq 50); do # up to 10 s
        flagged "$db" && { is_flagged=1; break; }
        sleep 0.2
    done
    if ((is_flagged)); then
        repl_synced "$M" "$db" && fail "$db: claims to be synced while the app's unsynced WAL is open"
        grep -q "replicator: db=$db: the app checkpointed without syncing its WAL" "$LOG" ||
            fail "$db: no error in the log"
    else
        [[ $mode != off ]] || fail "$db: not flagged: $(repl_status "$M")"
        repl_wait_synced 60 "$M" "$db"
        check_restore "$db"
        note "$db: not flagged (no WAL seen that could hide commits), exact while open"
    fi
    # the app closes the database: the snapshot goes up and the restore is exact
    touch "$TEST_TMP/close-$db"
    wait "$APP_PID" || fail "$db: the app failed"
    repl_wait_synced 60 "$M" "$db"
    [[ -z $(status_of "$db" last_error) ]] || fail "$db: last_error stayed: $(status_of "$db" last_error)"
    check_restore "$db"
    note "$db: detected while open, exact after close"
done

# control: synchronous=NORMAL everywhere is exact while the app still has the database open
app normal.db normal
wait_until 60 test -e "$TEST_TMP/open-normal.db"
repl_wait_synced 60 "$M" normal.db
check_restore normal.db
grep -q "db=normal.db: the app checkpointed" "$LOG" && fail "normal.db: flagged as unsynced"
touch "$TEST_TMP/close-normal.db"
wait "$APP_PID" || fail "normal.db: the app failed"
unmount_fs "$M"
fs_check_log "$LOG"

# A daemon killed under an OFF app: the flusher pushes the database's dirty pages too, so the
# checkpointed pages are not lost with it (before, they waited up to 30 s in the kernel while
# the WAL they came from was written over: the database came back without its table). The
# commits ended a second (10 flush periods) before the kill: the documented window is 100 ms.
mount_fs "$B" "$M" -o writeback,batch_interval=1
app killed.db off
wait_until 60 test -e "$TEST_TMP/open-killed.db"
sleep 1 # the window under test, not a synchronisation
kill -KILL "$BFS_FS_PID"
kill -KILL "$APP_PID" 2>/dev/null || true
wait "$APP_PID" 2>/dev/null || true
fusermount3 -u -z "$M"
mount_fs "$B" "$M" -o writeback,batch_interval=1
[[ $(sqlite3 "$M/killed.db" "pragma integrity_check") == ok ]] || fail "killed.db: corrupt after the kill"
rows=$(sqlite3 "$M/killed.db" "select count(*) from t" 2>&1)
[[ $rows == 3000 ]] || fail "killed.db: $rows rows after the daemon was killed, not 3000"
repl_wait_synced 60 "$M" killed.db
check_restore killed.db
unmount_fs "$M"
note "writeback: unsynced checkpoints detected and reported, restores exact once closed"
