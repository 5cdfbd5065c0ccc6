#!/usr/bin/env bash
# 78-rel-disk-full: BACKING_DIR (and so the staging area) on a small tmpfs. An app commits
# 64 KiB transactions until the disk is full: it gets SQLITE_FULL (ENOSPC) as on a plain
# disk; every transaction it saw committed is still in the local database; when space returns
# (a filler file is deleted) replication resumes, the lag drains, the restore equals the local
# database and holds every committed transaction, and the app can write again.
# Needs root (mount -t tmpfs); skipped otherwise.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

if (($(id -u) != 0)); then
    note "not root: skipped (needs mount -t tmpfs)"
    exit 0
fi
repl_bucket
SMALL=$TEST_TMP/small M=$TEST_TMP/mnt
mkdir -p "$SMALL" "$M"
mount -t tmpfs -o size=64m,mode=755 tmpfs "$SMALL" || fail "mount tmpfs"
on_exit umount -l "$SMALL"
mkdir "$SMALL/back"
# space to give back later
dd if=/dev/zero of="$SMALL/filler" bs=1M count=30 status=none
mount_fs "$SMALL/back" "$M" -o batch_interval=1${BFS_DF_LOG:+,log_level=$BFS_DF_LOG}

"$PY" - "$M/app.db" "$TEST_TMP/committed" <<'EOF' || fail "app: did not get SQLITE_FULL"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("create table t(id integer primary key, v blob)")
n = 0
try:
    while n < 100000:
        c.execute("insert into t values (?, randomblob(65536))", (n + 1,))
        n += 1
        open(sys.argv[2], "w").write(str(n))
except sqlite3.OperationalError as e:
    print("app: after %d commits: %s" % (n, e))
    sys.exit(0 if "full" in str(e) or "disk" in str(e) else 1)
sys.exit(1)
EOF
n=$(cat "$TEST_TMP/committed")
note "disk full after $n commits; df: $(df -h --output=avail "$SMALL" | tail -1)"
((n > 10)) || fail "too few commits before the disk was full ($n)"
grep -qiE 'ENOSPC|No space' "$BFS_FS_LOG" && note "daemon: $(grep -m1 -iE 'ENOSPC|No space' "$BFS_FS_LOG" | cut -c1-200)"
got=$(sqlite3 "$M/app.db" 'select count(*) from t') || fail "cannot read the database on a full disk"
((got >= n)) || fail "local database lost commits on a full disk: $got < $n"

rm -f "$SMALL/filler" # space returns
# A generation whose snapshot or unstaged frames were lost to ENOSPC has no sound base in the
# bucket: the daemon must not claim to be synced until a later generation takes a snapshot
# (wal/replicator.c: gen_close_locked, chain_broken). Start one: checkpoint + new WAL.
sqlite3 "$M/app.db" "insert into t values (1000000, 'after')" || fail "app cannot write after space returned"
if grep -qE 'lost unstaged frames|snapshot: failed' "$BFS_FS_LOG"; then
    repl_synced "$M" app.db && fail "synced claimed although a generation lost its base"
    note "a generation lost its base to ENOSPC: not synced until the next snapshot (good)"
fi
# new generations (checkpoint + new WAL) until one has its snapshot in the bucket
end=$(($(date +%s) + ${BFS_DF_WAIT:-120}))
k=1000001
until repl_synced "$M" app.db; do
    (($(date +%s) < end)) || { repl_status "$M" >&2; fail "replication did not recover after space returned"; }
    sqlite3 "$M/app.db" "pragma wal_checkpoint(TRUNCATE); insert into t values ($k, 'after')" >/dev/null ||
        fail "write after space returned"
    k=$((k + 1))
    sleep 2 # give the new generation's snapshot time before the next one (polled above)
done
sum=$(sha3 "$M/app.db")
cli -d app.db restore -o "$TEST_TMP/r.db" >"$TEST_TMP/r.out" 2>&1 || { cat "$TEST_TMP/r.out" "$BFS_FS_LOG" | tail -30 >&2; fail "restore"; }
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "restore differs from the local database"
[[ $(sqlite3 "$TEST_TMP/r.db" "select count(*) from t where id <= $n") == "$n" ]] ||
    fail "restore lacks committed transactions"
unmount_fs "$M"
note "ENOSPC to the app, nothing committed lost, replication resumed"
