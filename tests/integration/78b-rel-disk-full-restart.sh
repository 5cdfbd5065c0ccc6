#!/usr/bin/env bash
# 78b-rel-disk-full-restart: the staging area is full at the moment SQLite restarts the WAL
# while committed frames are still unstaged (batch_interval=30: after the first commit's batch
# nothing is staged on its own). The restart's first -wal write (the new header at offset 0)
# would destroy those frames, the daemon cannot stage them (ENOSPC), so it refuses the write:
# the app gets "database or disk is full" (and again while the disk stays full) and nothing is
# lost. Once space returns the same write succeeds, every committed transaction reaches the
# bucket (no "lost unstaged frames", no repair snapshot needed) and a strict restore equals the
# local database.
# Needs root (mount -t tmpfs); skipped otherwise.
# timeout: 300
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
mount -t tmpfs -o size=32m,mode=755 tmpfs "$SMALL" || fail "mount tmpfs"
on_exit umount -l "$SMALL"
mkdir "$SMALL/back"
mount_fs "$SMALL/back" "$M" -o batch_interval=30

# Setup with space: 60 rows of 64 KiB, 20 deleted again so the file keeps free pages (the
# checkpoint later needs no new space on the full disk), then a WAL truncation stages it all.
sqlite3 "$M/app.db" >/dev/null <<'EOF' || fail "setup"
pragma journal_mode=wal;
create table t(id integer primary key, v blob);
create table log(n integer primary key, phase text);
with recursive s(i) as (select 1 union all select i + 1 from s where i < 60)
insert into t select i, randomblob(65536) from s;
delete from t where id > 40;
pragma wal_checkpoint(TRUNCATE);
EOF
repl_wait_synced 90 "$M" app.db

"$PY" - "$M" "$SMALL/filler" <<'EOF' || fail "app"
import errno, json, os, sqlite3, sys, time
mnt, filler = sys.argv[1], sys.argv[2]
c = sqlite3.connect(os.path.join(mnt, "app.db"), isolation_level=None)
c.execute("pragma wal_autocheckpoint=0")
n = 0
for i in range(1, 21):  # committed, not staged yet (batch interval 30 s)
    c.execute("begin")
    c.execute("update t set v = randomblob(65536) where id = ?", (i,))
    c.execute("insert into log values (?, 'before')", (i,))
    c.execute("commit")
    n = i
# The daemon's own transient files (the snapshot's and a batch's compressed copies) live on
# the staging disk too: filling the disk while they exist lets their deletion free space for
# the gate, and the restart would rightly go through. Wait until the snapshot is uploaded and
# nothing is staged (the first commit's batch goes at once); the 19 commits after it stay
# unstaged for the 30 s batch interval.
deadline = time.monotonic() + 60
while True:
    st = json.load(open(os.path.join(mnt, ".bottomless/status")))
    d = [x for x in st["databases"] if x["path"] == "app.db"][0]
    if not d["snapshot_pending"] and d["staged_bytes"] == 0:
        break
    if time.monotonic() > deadline:
        sys.exit("the daemon did not go idle within 60 s: %r" % d)
    time.sleep(0.05)
print("app: %d commits; committed frame %d, uploaded %d, staged %d bytes" %
      (n, d["last_committed_frame"], d["last_uploaded_frame"], d["staged_bytes"]))
unstaged = d["last_committed_frame"] - d["last_uploaded_frame"] - d["staged_bytes"] // (4096 + 24)
if unstaged < 100:
    sys.exit("only %d frames unstaged before the restart: the test proves nothing" % unstaged)
# fill the disk
with open(filler, "wb", buffering=0) as f:
    for chunk in (1 << 20, 4096, 512):
        try:
            while True:
                f.write(b"\0" * chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
print("app: disk full, %d bytes of filler" % os.path.getsize(filler))
busy, wal, done = c.execute("pragma wal_checkpoint(PASSIVE)").fetchone()
if busy or wal != done:
    sys.exit("checkpoint incomplete on the full disk: busy=%d log=%d done=%d" % (busy, wal, done))
# the next write transaction restarts the WAL over unstaged committed frames
for attempt in (1, 2):
    try:
        c.execute("insert into log values (21, 'restart')")
        sys.exit("attempt %d: the WAL restart succeeded on a full staging disk" % attempt)
    except sqlite3.OperationalError as e:
        print("app: attempt %d: %s" % (attempt, e))
        if "database or disk is full" not in str(e):
            sys.exit("unexpected error: %s" % e)
got = c.execute("select count(*), max(n) from log").fetchone()
if got != (20, 20):
    sys.exit("after the refused write the db shows %r, want (20, 20)" % (got,))
os.unlink(filler)  # space returns
c.execute("insert into log values (21, 'restart')")
for i in range(22, 31):
    c.execute("begin")
    c.execute("update t set v = randomblob(65536) where id = ?", (i,))
    c.execute("insert into log values (?, 'after')", (i,))
    c.execute("commit")
print("app: 30 commits after space returned")
c.close()
EOF
line=$(grep -m1 'staging disk full' "$BFS_FS_LOG") || fail "the daemon did not log the refused write"
note "daemon: ${line:0:200}"
! grep -E 'lost unstaged frames' "$BFS_FS_LOG" >&2 || fail "committed frames were lost to the bucket"

sqlite3 "$M/app.db" "pragma wal_checkpoint(TRUNCATE)" >/dev/null || fail "final checkpoint"
repl_wait_synced 90 "$M" app.db
[[ $(sqlite3 "$M/app.db" "select count(*), sum(n) from log") == "30|465" ]] || fail "local log table"
sum=$(sha3 "$M/app.db")
cli -d app.db restore --strict -o "$TEST_TMP/r.db" >"$TEST_TMP/r.out" 2>&1 ||
    { tail -30 "$TEST_TMP/r.out" "$BFS_FS_LOG" >&2; fail "strict restore"; }
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "strict restore differs from the local database"
[[ $(sqlite3 "$TEST_TMP/r.db" "select count(*), sum(n) from log") == "30|465" ]] ||
    fail "restore lacks committed transactions"
unmount_fs "$M"
note "WAL restart on a full staging disk: ENOSPC to the app, nothing lost, strict restore exact"
