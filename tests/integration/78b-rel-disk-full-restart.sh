#!/usr/bin/env bash
# 78b-rel-disk-full-restart: the staging area is full at the moment SQLite restarts the WAL
# while committed frames are still unstaged (batch_interval=30: after the first commit's batch
# nothing is staged on its own). The restart's first -wal write (the new header at offset 0)
# would destroy those frames. Two cases:
#   taken:   the daemon takes the old -wal file as the staged segment (a rename: no space
#            needed; "stolen WALs" in wal/replicator.c); the app's own write into the new -wal
#            then fails for lack of space.
#   refused: after its first commit the app gives its -wal 8 MiB more of allocated blocks (as
#            a large transaction would have left it), so the unstaged frames fill less than half
#            the file and are copied instead; the daemon cannot copy them (ENOSPC), so it
#            refuses the write and logs why.
# Either way the app gets "database or disk is full" (and again while the disk stays full) and
# nothing is lost: once space returns the same write succeeds, every committed transaction
# reaches the bucket (no "lost unstaged frames", no repair snapshot needed) and a strict restore
# equals the local database.
# Needs root (mount -t tmpfs); skipped otherwise.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

if (($(id -u) != 0)); then
    note "not root: skipped (needs mount -t tmpfs)"
    exit 0
fi
cat >"$TEST_TMP/app.py" <<'EOF'
import errno, json, os, sqlite3, sys, time
mnt, filler, grow = sys.argv[1], sys.argv[2], sys.argv[3] == "grow"
c = sqlite3.connect(os.path.join(mnt, "app.db"), isolation_level=None)
c.execute("pragma wal_autocheckpoint=0")
n = 0
for i in range(1, 21):  # committed, not staged yet (batch interval 30 s)
    c.execute("begin")
    c.execute("update t set v = randomblob(65536) where id = ?", (i,))
    c.execute("insert into log values (?, 'before')", (i,))
    c.execute("commit")
    n = i
    if i == 1 and grow:
        fd = os.open(os.path.join(mnt, "app.db-wal"), os.O_RDWR)
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size + (8 << 20))
        os.close(fd)
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

wals_taken() { # MNT: the status file's wals_taken of app.db
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))["databases"]
print([x for x in d if x["path"] == "app.db"][0]["wals_taken"])' "$1/.bottomless/status"
}

# run_case NAME [grow]: grow: the app gives its -wal more blocks (see the top)
run_case() {
    local name=$1 grow=${2:-}
    repl_bucket
    local SMALL=$TEST_TMP/small-$name M=$TEST_TMP/mnt-$name
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

    "$PY" "$TEST_TMP/app.py" "$M" "$SMALL/filler" "$grow" || fail "$name: app"
    taken=$(wals_taken "$M")
    if [[ $name == taken ]]; then
        ((taken >= 1)) || fail "$name: the -wal was not taken (wals_taken=$taken)"
        ! grep -q 'staging disk full' "$BFS_FS_LOG" || fail "$name: the write was refused"
        note "$name: the -wal was taken at the restart (wals_taken=$taken)"
    else
        line=$(grep -m1 'staging disk full' "$BFS_FS_LOG") ||
            fail "$name: the daemon did not log the refused write (wals_taken=$taken)"
        note "$name: daemon: ${line:0:200}"
    fi
    ! grep -E 'lost unstaged frames' "$BFS_FS_LOG" >&2 || fail "$name: committed frames were lost"

    sqlite3 "$M/app.db" "pragma wal_checkpoint(TRUNCATE)" >/dev/null ||
        fail "$name: final checkpoint"
    [[ $(sqlite3 "$M/app.db" "select count(*), sum(n) from log") == "30|465" ]] ||
        fail "$name: local log table"
    sum=$(sha3 "$M/app.db")
    unmount_fs "$M" # its flush uploads what the 30 s batch interval still holds
    cli -d app.db restore --strict -o "$TEST_TMP/r-$name.db" >"$TEST_TMP/r-$name.out" 2>&1 ||
        { tail -30 "$TEST_TMP/r-$name.out" "$BFS_FS_LOG" >&2; fail "$name: strict restore"; }
    [[ $(sha3 "$TEST_TMP/r-$name.db") == "$sum" ]] ||
        fail "$name: strict restore differs from the local database"
    [[ $(sqlite3 "$TEST_TMP/r-$name.db" "select count(*), sum(n) from log") == "30|465" ]] ||
        fail "$name: restore lacks committed transactions"
    note "$name: WAL restart on a full staging disk: ENOSPC to the app, nothing lost," \
        "strict restore exact"
}

run_case taken
run_case refused grow
