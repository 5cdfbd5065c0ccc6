#!/usr/bin/env bash
# 44-fs-writeback-crash: the documented price of -o writeback=MS. The daemon is SIGKILLed while
# an app commits; what the daemon had received (the backing files) must hold
#   - synchronous=NORMAL: every commit that returned more than MS (plus a scheduling margin on
#     this loaded 2-vCPU machine) before the kill; later ones may be lost, never a torn one;
#   - synchronous=FULL: every commit that returned before the kill.
# timeout: 180
# serial: it asserts the writeback window in milliseconds
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

MS=100
lines_at_least() { [[ -e $1 ]] && (($(wc -l <"$1") >= $2)); }
stop_quietly() { kill "$1" 2>/dev/null || true; }
MARGIN_MS=900 # flusher pass + scheduling delay under the parallel test load

run_case() { # run_case NORMAL|FULL
    local sync=$1 B=$TEST_TMP/back-$1 M=$TEST_TMP/mnt-$1 log=$TEST_TMP/commits-$1
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o noreplicate,writeback=$MS
    local daemon=$BFS_FS_PID
    # The app: one row per transaction, logs "id monotonic-time" after each COMMIT returns
    # (the log is on the local disk, not on the mount). It stops at the first error (the
    # mount goes away with the daemon).
    /usr/bin/python3 - "$M/c.db" "$sync" "$log" <<'PYEOF' &
import sqlite3, sys, time
db, sync, log = sys.argv[1:4]
out = open(log, "w", buffering=1)
try:
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute(f"PRAGMA synchronous={sync}")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
    i = 0
    while True:
        i += 1
        c.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
        out.write(f"{i} {time.monotonic():.6f}\n")
        time.sleep(0.001)
except Exception:
    pass
PYEOF
    local app=$!
    on_exit stop_quietly "$app"
    wait_until 30 lines_at_least "$log" 1500
    local t_kill
    t_kill=$(/usr/bin/python3 -c 'import time; print(f"{time.monotonic():.6f}")')
    local conn
    conn=$(mountpoint -d "$M" | cut -d: -f2)
    kill -9 "$daemon"
    # The app is not told: its writes keep landing in the kernel's page cache, and an fsync
    # may wait forever on pages whose writeback was in flight (kernel 6.18), until the
    # connection is aborted. Stop the app, abort the connection, then look at the backing.
    kill "$app" 2>/dev/null || true
    if [[ -w /sys/fs/fuse/connections/$conn/abort ]]; then
        echo 1 >"/sys/fs/fuse/connections/$conn/abort"
    fi
    wait "$app" 2>/dev/null || true
    fusermount3 -u -z "$M" 2>/dev/null || true
    # What the daemon got: the backing db + -wal (a copy, without the stale -shm).
    mkdir -p "$TEST_TMP/check-$sync"
    cp "$B/c.db" "$TEST_TMP/check-$sync/"
    [[ -e $B/c.db-wal ]] && cp "$B/c.db-wal" "$TEST_TMP/check-$sync/"
    local got
    got=$(sqlite3 "$TEST_TMP/check-$sync/c.db" "PRAGMA integrity_check; SELECT count(*) || ' ' || coalesce(max(id), 0) FROM t;")
    [[ $got == ok$'\n'* ]] || fail "$sync: backing database damaged: $got"
    local count=${got#ok$'\n'} maxid
    maxid=${count#* }
    count=${count% *}
    [[ $count == "$maxid" ]] || fail "$sync: rows are not a prefix (count $count, max id $maxid)"
    /usr/bin/python3 - "$log" "$t_kill" "$maxid" "$sync" "$MS" "$MARGIN_MS" <<'PYEOF' || fail "$sync: window"
import sys
log, t_kill, maxid, sync, ms, margin = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
rows = [l.split() for l in open(log) if l.strip()]
committed = [(int(i), float(t)) for i, t in rows if float(t) <= t_kill]
last = committed[-1][0]
bound = t_kill if sync == "FULL" else t_kill - (ms + margin) / 1000
must = max((i for i, t in committed if t <= bound), default=0)
lost = [t for i, t in committed if i > maxid]
window = (t_kill - min(lost)) * 1000 if lost else 0
print(f"    # {sync}: {last} commits returned before the kill, {maxid} reached the daemon, "
      f"lost {last - maxid if last > maxid else 0} (the oldest lost returned {window:.0f} ms before the kill)")
if maxid < must:
    sys.exit(f"{sync}: commit {must} returned >= {(t_kill - bound) * 1000:.0f} ms before the kill "
             f"but the daemon only had up to {maxid}")
PYEOF
}

run_case NORMAL
run_case FULL
echo ok
