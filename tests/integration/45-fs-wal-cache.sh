#!/usr/bin/env bash
# 45-fs-wal-cache: in write-through mode a one-page SQLite transaction costs exactly two FUSE
# WRITE requests (frame header + page) once the WAL has been restarted and read back into the
# kernel's page cache by the mount helper (fs/mounthelper.h); with -o nowalcache the page
# write straddling two not-up-to-date cache pages costs two requests (three per transaction).
# Counted from MOUNT/.bottomless/stats around 1,500 single-row UPDATEs; the data is checked too.
# A new -wal grows ahead of SQLite's writes (fs/ops_file.c fs_wal_grow): an 8 MB transaction
# into a new database costs 2 WRITEs per frame and its checkpoint reads the frames from the
# cache (3 WRITEs and 1 READ per frame with -o nowalcache); after a SIGKILL the backing -wal,
# zero tail included, recovers every committed row.
# Then the daemon is SIGKILLed while its mount helper child (fs/mounthelper.h: warm-up reads,
# or with -o writeback the flusher's syncs) holds a -wal open through the mount: it must still
# exit (with that I/O in a thread of its own it hung: a request in flight, or the kernel's
# FLUSH on closing that file, waited forever for the dead daemon), the helper must end with it,
# and the app must get an error, not hang.
# timeout: 300
# serial: it counts FUSE requests per transaction
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

PY=/usr/bin/python3

# writes_per_tx MODE OPTS -> prints WRITE requests per transaction of the measured phase
writes_per_tx() {
    local mode=$1 opts=$2
    local B=$TEST_TMP/$mode/back M=$TEST_TMP/$mode/mnt
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o "$opts"
    $PY - "$M" <<'PYEOF' || fail "$mode: workload"
import json, sqlite3, sys, time
mnt = sys.argv[1]

def stats():
    with open(mnt + "/.bottomless/stats") as f:
        return json.load(f)["by_op"]

db = sqlite3.connect(mnt + "/w.db", isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
db.execute("INSERT INTO t VALUES (1, 'x0')")
n = 0
def updates(k):
    global n
    for _ in range(k):
        n += 1
        db.execute("UPDATE t SET v = ? WHERE id = 1", ("x%d" % n,))
# warm-up phase: past the first automatic checkpoint (1,000 frames) and WAL restart
updates(1500)
# let the warm-up reads finish: the READ count stops moving but for the reads of the stats
# file itself (poll with a deadline)
deadline = time.monotonic() + 60
last = -100
while True:
    r = stats().get("READ", 0)
    if r - last <= 4:
        break
    if time.monotonic() > deadline:
        sys.exit("READ requests still growing after 60 s")
    last = r
    time.sleep(0.3)
s0 = stats()
updates(1500)
s1 = stats()
row = db.execute("SELECT v FROM t WHERE id = 1").fetchone()[0]
if row != "x%d" % n:
    sys.exit("wrong value %r after %d updates" % (row, n))
if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
    sys.exit("integrity_check failed")
db.close()
w = s1.get("WRITE", 0) - s0.get("WRITE", 0)
with open(mnt + "/../writes", "w") as f:
    f.write("%.3f\n" % (w / 1500.0))
PYEOF
    unmount_fs "$M"
    [[ $(sqlite3 "$B/w.db" "SELECT v FROM t") == x3000 ]] || fail "$mode: backing file content"
    cat "$TEST_TMP/$mode/writes"
}

with=$(writes_per_tx walcache noreplicate)
note "WRITE requests per one-page transaction, WAL cache warmed: $with"
without=$(writes_per_tx nowalcache noreplicate,nowalcache)
note "WRITE requests per one-page transaction, -o nowalcache: $without"
awk -v w="$with" 'BEGIN { exit !(w <= 2.02) }' ||
    fail "a one-page transaction cost $with WRITE requests (want 2: frame header + page)"
# the kernel splits the straddling page write when the cache pages are not up to date: this
# is what the warmer removes (if a kernel stops doing that, this check tells)
awk -v w="$with" -v o="$without" 'BEGIN { exit !(o >= w + 0.5) }' ||
    fail "without the WAL cache a transaction cost $without WRITE requests, with it $with"

# --- a new -wal grows ahead of SQLite's writes (fs/ops_file.c fs_wal_grow) -------------------
# One 8 MB transaction into a new database, then a checkpoint: with the growth its frames land
# on up-to-date pages (2 WRITEs per frame, and the checkpoint reads them from the cache); with
# -o nowalcache 3 WRITEs and one READ per frame. Then a committed transaction stays in the
# -wal (zero tail past its frames), the daemon is SIGKILLed, and SQLite opens the backing
# files directly: the rows are all there and the database is intact.
grow_case() { # MODE OPTS -> prints "WRITEs/frame READs/frame"
    local mode=$1 opts=$2
    local B=$TEST_TMP/grow-$mode/back M=$TEST_TMP/grow-$mode/mnt
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o "$opts"
    DPID=$BFS_FS_PID $PY - "$M" <<'PYEOF' >"$TEST_TMP/grow-$mode/out" || fail "$mode: bulk workload"
import json, sqlite3, sys
mnt = sys.argv[1]
def stats():
    with open(mnt + "/.bottomless/stats") as f:
        return json.load(f)["by_op"]
db = sqlite3.connect(mnt + "/g.db", isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("PRAGMA cache_size=-65536")
db.execute("CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)")
s0 = stats()
db.execute("BEGIN")
for i in range(8000):
    db.execute("INSERT INTO b(v) VALUES (randomblob(1000))")
db.execute("COMMIT")
s1 = stats()
busy, frames, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
assert busy == 0 and frames == done and frames > 1500, (busy, frames, done)
s2 = stats()
d = lambda a, b, k: b.get(k, 0) - a.get(k, 0)
print("%.3f %.3f" % (d(s0, s1, "WRITE") / frames, d(s0, s2, "READ") / frames))
db.execute("BEGIN")
for i in range(2000):
    db.execute("INSERT INTO b(v) VALUES (randomblob(1000))")
db.execute("COMMIT")  # stays in the -wal: no checkpoint, and the connection stays open
print(db.execute("SELECT count(*) FROM b").fetchone()[0])
sys.stdout.flush()
import os, signal
os.kill(int(os.environ["DPID"]), signal.SIGKILL)
PYEOF
    local deadline=$((SECONDS + 20))
    while kill -0 "$BFS_FS_PID" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$BFS_FS_PID/stat" 2>/dev/null) != Z ]]; do
        ((SECONDS < deadline)) || fail "$mode: SIGKILLed daemon still there"
        sleep 0.1
    done
    fusermount3 -u -z "$M" 2>/dev/null || true
    local rows wal_size
    rows=$(sed -n 2p "$TEST_TMP/grow-$mode/out")
    wal_size=$(stat -c %s "$B/g.db-wal")
    [[ $(sqlite3 "$B/g.db" "PRAGMA integrity_check") == ok ]] || fail "$mode: backing db after SIGKILL"
    [[ $(sqlite3 "$B/g.db" "SELECT count(*) FROM b") == "$rows" && $rows == 10000 ]] ||
        fail "$mode: backing db has $(sqlite3 "$B/g.db" "SELECT count(*) FROM b") rows, want $rows"
    note "$mode: -wal was $wal_size bytes at the kill; SQLite recovered $rows rows from it"
    head -n 1 "$TEST_TMP/grow-$mode/out"
}
read -r gw gr < <(grow_case grow noreplicate)
note "new -wal, 8 MB transaction + checkpoint: $gw WRITEs and $gr READs per frame"
read -r nw nr < <(grow_case nogrow noreplicate,nowalcache)
note "the same with -o nowalcache: $nw WRITEs and $nr READs per frame"
awk -v w="$gw" -v r="$gr" 'BEGIN { exit !(w <= 2.2 && r <= 0.2) }' ||
    fail "a new -wal's frames cost $gw WRITEs and $gr READs each (want 2 and ~0: it grows ahead)"
awk -v w="$nw" -v r="$nr" 'BEGIN { exit !(w >= 2.8 && r >= 0.9) }' ||
    fail "without the growth a frame cost $nw WRITEs and $nr READs (expected 3 and 1: the check is blind)"

# --- SIGKILL while the daemon's own thread has a -wal open through the mount ------------------
# kill_while_open MODE OPTS: the warmer (write-through) or the flusher (-o writeback) opens the
# -wal through the mount; SIGKILL the daemon while it does.
kill_while_open() {
    local mode=$1 opts=$2
    local B=$TEST_TMP/kill-$mode/back M=$TEST_TMP/kill-$mode/mnt
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o "$opts"
    DPID=$BFS_FS_PID KM=$M
    $PY - "$M/k.db" <<'PYEOF' 2>"$TEST_TMP/kill-app.err" &
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=4000")  # 16 MiB WALs: long warm-ups
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
db.execute("INSERT INTO t VALUES (1, randomblob(100))")
while True:
    db.execute("UPDATE t SET v = randomblob(100) WHERE id = 1")
PYEOF
    local app=$! deadline helper
    helper=$(pgrep -P "$DPID" | head -n 1) || fail "$mode: no mount helper child of the daemon"
    # poll the helper's descriptors in a tight loop and SIGKILL the daemon the moment the helper
    # has the -wal open (its open/sync window is short)
    $PY - "$helper" "$DPID" "$M/k.db-wal" "$app" <<'PYEOF' || fail "$mode: the mount helper never had k.db-wal open within 120 s"
import os, signal, sys, time
helper, daemon, want, app = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
end = time.monotonic() + 120
while time.monotonic() < end:
    try:
        fds = os.listdir("/proc/%d/fd" % helper)
    except OSError:
        sys.exit("helper gone")
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (helper, fd)) == want:
                os.kill(daemon, signal.SIGKILL)
                sys.exit(0)
        except OSError:
            pass
    try:
        os.kill(app, 0)
    except OSError:
        sys.exit("app stopped")
sys.exit(1)
PYEOF
    deadline=$((SECONDS + 20))
    until daemon_exited; do
        if ((SECONDS >= deadline)); then
            cat "/proc/$DPID/task/"*/stack >&2 2>/dev/null || true
            abort_conn
            fail "$mode: the SIGKILLed daemon did not exit within 20 s (stuck closing its own file on the mount)"
        fi
        sleep 0.1
    done
    deadline=$((SECONDS + 20))
    while kill -0 "$app" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            abort_conn
            fail "$mode: the app hung after the daemon was killed"
        fi
        sleep 0.1
    done
    wait "$app" 2>/dev/null && fail "$mode: the app exited 0 although its filesystem died"
    deadline=$((SECONDS + 20))
    while [[ -e /proc/$helper && $(awk '/^State:/ { print $2 }' "/proc/$helper/status" 2>/dev/null) != Z ]]; do
        ((SECONDS < deadline)) || fail "$mode: the mount helper outlived the daemon"
        sleep 0.1
    done
    fusermount3 -u -z "$M" 2>/dev/null || true
    note "$mode: SIGKILL while the daemon had the -wal open: it exited, the app got: $(tail -n 1 "$TEST_TMP/kill-app.err")"
}
# exited: gone, or a zombie whose threads are all gone (a thread stuck in the kernel keeps it)
daemon_exited() {
    [[ -e /proc/$DPID ]] || return 0
    [[ $(awk '/^State:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null) == Z ]] &&
        (($(ls "/proc/$DPID/task" 2>/dev/null | wc -l) <= 1))
}
abort_conn() { # unblock the kernel so the test can clean up after a failure
    local dev
    dev=$(mountpoint -d "$KM" 2>/dev/null) && echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null
    return 0
}
kill_while_open warmer noreplicate
kill_while_open flusher noreplicate,writeback
