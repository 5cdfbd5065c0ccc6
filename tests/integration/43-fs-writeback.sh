#!/usr/bin/env bash
# 43-fs-writeback: -o writeback=MS keeps the kernel's writeback cache but pushes the dirty
# pages of every open -wal to the daemon every MS ms: a synchronous=NORMAL commit reaches the
# backing -wal within a few MS while the app keeps the database open (the kernel alone would
# hold it ~30 s), and the app's data stays consistent.
# timeout: 120
# serial: it times how soon commits reach the backing file
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o noreplicate,writeback=100

fifo=$TEST_TMP/go
mkfifo "$fifo"
/usr/bin/python3 - "$M/wb.db" "$fifo" "$TEST_TMP/ready" <<'PYEOF' &
import sqlite3, sys, time
db, fifo, ready = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, isolation_level=None)
c.execute("PRAGMA journal_mode=wal")
c.execute("PRAGMA synchronous=NORMAL")
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("CREATE TABLE m(v TEXT)")
for i in range(3):
    c.execute("INSERT INTO m VALUES (?)", (f"MARKER-{i}-" + "q" * 40,))
    open(ready + str(i), "w").close()
    open(fifo).read()          # wait for the test to see it in the backing file
c.close()
PYEOF
app=$!
stop_app() { kill "$1" 2>/dev/null || true; }
on_exit stop_app "$app"
for i in 0 1 2; do
    wait_until 10 test -e "$TEST_TMP/ready$i"
    t0=$(date +%s%N)
    wait_until 5 grep -q "MARKER-$i-" "$B/wb.db-wal"
    ms=$((($(date +%s%N) - t0) / 1000000))
    note "commit $i reached the backing -wal after ${ms} ms"
    ((ms < 3000)) || fail "commit $i took ${ms} ms to reach the daemon"
    echo go >"$fifo"
done
wait "$app" || fail "app failed"
[[ $(sqlite3 "$M/wb.db" 'SELECT count(*) FROM m') == 3 ]] || fail "rows through mount"
unmount_fs "$M"
[[ $(sqlite3 "$B/wb.db" 'SELECT count(*) FROM m') == 3 ]] || fail "rows in backing"
echo ok
