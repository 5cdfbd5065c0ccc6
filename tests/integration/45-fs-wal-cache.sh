#!/usr/bin/env bash
# 45-fs-wal-cache: in write-through mode a one-page SQLite transaction costs exactly two FUSE
# WRITE requests (frame header + page) once the WAL has been restarted and read back into the
# kernel's page cache by fs/warmer.c; with -o nowalcache the page write straddling two
# not-up-to-date cache pages costs two requests (three per transaction). Counted from
# MOUNT/.bottomless/stats around 1,500 single-row UPDATEs; the data is checked too.
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
