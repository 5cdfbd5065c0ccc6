#!/usr/bin/env bash
# 63-repl-kill9: the daemon is killed with SIGKILL in the middle of a write loop
# (synchronous=NORMAL, rows of random sizes, autocheckpoints); after fusermount3 -u -z and a
# new mount on the same backing directory, every transaction the app saw committed (logged
# outside the mount after each commit returned) reaches the bucket, and the restore equals the
# local database exactly; a mount over the dead one is refused with the fix.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt LOG=$TEST_TMP/committed.log
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1
pid1=$BFS_FS_PID

cat >"$TEST_TMP/app.py" <<'EOF'
import os, random, sqlite3, sys
db, log = sys.argv[1], sys.argv[2]
rnd = random.Random(63)
c = sqlite3.connect(db, isolation_level=None, timeout=5)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=NORMAL")
c.execute("pragma wal_autocheckpoint=200")
c.execute("create table if not exists t(id integer primary key, v blob)")
out = open(log, "a", buffering=1)
i = 0
try:
    while i < 200000:
        i += 1
        n = rnd.choice([10, 100, 1000, 5000, 20000])
        c.execute("begin")
        c.execute("insert into t(id, v) values (?, randomblob(?))", (i, n))
        c.execute("commit")
        out.write("%d\n" % i)   # the app saw transaction i committed
except Exception as e:
    print("app stopped at %d: %s" % (i, e), file=sys.stderr)
EOF
"$PY" "$TEST_TMP/app.py" "$M/app.db" "$LOG" 2>"$TEST_TMP/app.err" &
app=$!
on_exit bash -c "kill $app 2>/dev/null || true"
logged_at_least() { [[ -f $LOG ]] && (($(wc -l <"$LOG") >= $1)); }
wait_until 120 logged_at_least 1500
kill -KILL "$pid1"
note "daemon killed after $(wc -l <"$LOG") logged commits"
wait "$app" || true
cat "$TEST_TMP/app.err" >&2 || true
# a new mount over the dead one is refused with the fix (it stacked on top of it, hiding it,
# when the kernel still had the root's attributes cached: a database created in the mount)
stack_rc=0
"$BFS_BIN/bottomlessfs" "$B" "$M" >"$TEST_TMP/stack.out" 2>&1 || stack_rc=$?
((stack_rc != 0)) || { fusermount3 -u -z "$M"; fail "mounted over the dead mount"; }
grep -q "a dead FUSE mount is still there: run fusermount3 -u -z" "$TEST_TMP/stack.out" ||
    fail "no fix named for the dead mount: $(cat "$TEST_TMP/stack.out")"
fusermount3 -u -z "$M" || fail "fusermount3 -u -z failed"
last=$(tail -n 1 "$LOG")
[[ $last =~ ^[0-9]+$ ]] || fail "no committed transaction logged"

mount_fs "$B" "$M" -o batch_interval=1
[[ $(sqlite3 "$M/app.db" "pragma integrity_check") == ok ]] || fail "local integrity_check"
local_max=$(sqlite3 "$M/app.db" "select max(id) from t")
((local_max >= last)) || fail "local database lost committed transactions ($local_max < $last)"
repl_wait_synced 180 "$M" app.db
sum=$(sha3 "$M/app.db")
cli -d app.db restore -o "$TEST_TMP/r.db" >/dev/null || fail "restore failed"
got=$(sqlite3 "$TEST_TMP/r.db" "select count(*) from t where id <= $last")
[[ $got == "$last" ]] || fail "bucket holds $got of the $last transactions the app saw committed"
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "restore differs from the local database"
unmount_fs "$M"
note "ok: $last logged commits, local max $local_max"
