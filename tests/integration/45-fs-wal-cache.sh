#!/usr/bin/env bash
# 45-fs-wal-cache: in write-through mode a one-page SQLite transaction costs exactly two FUSE
# WRITE requests (frame header + page) once the WAL has been restarted and read back into the
# kernel's page cache by the mount helper (fs/mounthelper.h); with -o nowalcache the page write straddling two
# not-up-to-date cache pages costs two requests (three per transaction). Counted from
# MOUNT/.bottomless/stats around 1,500 single-row UPDATEs; the data is checked too.
# Then the daemon is SIGKILLed while its mount helper child (fs/mounthelper.h: warm-up reads,
# or with -o writeback the flusher's syncs) holds a -wal open through the mount: it must still
# exit (with that I/O in a thread of its own it hung: a request in flight, or the kernel's
# FLUSH on closing that file, waited forever for the dead daemon), the helper must end with it,
# and the app must get an error, not hang.
# timeout: 300
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
