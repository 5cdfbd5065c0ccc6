#!/usr/bin/env bash
# 41-fs-sqlite: SQLite through the mount (pure passthrough, -o noreplicate) in default and
# writeback mode: a WAL database with the sqlite3 shell and Python's sqlite3; the -shm file
# is a shared mmap of the FUSE file; two writer processes (2 x 2000 rows) and a reader that
# checks count == max(id) and monotonic counts while they run; integrity_check; "database is
# locked" between processes; raw fcntl byte-range conflicts; contents equal in the backing file
# after unmount. Modes: default, writeback, and the spinning session loop with noxattr.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

PY=/usr/bin/python3

run_mode() {
    local mode=$1
    shift
    local B=$TEST_TMP/$mode/back M=$TEST_TMP/$mode/mnt
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o noreplicate "$@"
    note "mode $mode: mounted (pid $BFS_FS_PID)"

    # --- sqlite3 shell, WAL -------------------------------------------------------------
    [[ $(sqlite3 "$M/shell.db" 'PRAGMA journal_mode=wal;') == wal ]] || fail "journal_mode"
    sqlite3 "$M/shell.db" 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5000)
        INSERT INTO t(v) SELECT hex(randomblob(50)) FROM c;' || fail "shell insert"
    [[ $(sqlite3 "$M/shell.db" 'SELECT count(*) FROM t') == 5000 ]] || fail "shell rows"
    [[ $(sqlite3 "$M/shell.db" 'PRAGMA integrity_check') == ok ]] || fail "integrity (shell)"
    [[ $(head -c 16 "$B/shell.db" | tr -d '\0') == "SQLite format 3" ]] || fail "db header"

    # --- python: -shm is a shared mapping of the FUSE file -------------------------------
    $PY - "$M/py.db" "$M" <<'PYEOF' || fail "python sqlite / shm mmap"
import os, sqlite3, sys
db, mnt = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, isolation_level=None)
assert c.execute("PRAGMA journal_mode=wal").fetchone()[0] == "wal"
c.execute("CREATE TABLE k(id INTEGER PRIMARY KEY, v BLOB)")
for i in range(500):
    c.execute("INSERT INTO k(v) VALUES (randomblob(300))")
maps = open("/proc/self/maps").read()
shm = [l for l in maps.splitlines() if l.endswith(db + "-shm")]
assert shm, "no -shm mapping on the mount"
assert any(" rw-s " in l for l in shm), shm
assert c.execute("SELECT count(*) FROM k").fetchone()[0] == 500
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
assert os.path.getsize(db + "-wal") == 0
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
c.close()
PYEOF

    # --- two writers and a reader, concurrently -----------------------------------------
    sqlite3 "$M/conc.db" 'PRAGMA journal_mode=wal; CREATE TABLE c(id INTEGER PRIMARY KEY, w INT, v TEXT);' >/dev/null
    cat >"$TEST_TMP/writer.py" <<'PYEOF'
import sqlite3, sys, time
db, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db, timeout=60, isolation_level=None)
for i in range(n):
    c.execute("INSERT INTO c(w, v) VALUES (?, ?)", (w, "x" * 100))
    time.sleep(0.0003)
c.close()
PYEOF
    cat >"$TEST_TMP/reader.py" <<'PYEOF'
import sqlite3, sys, time
db, total = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db, timeout=60, isolation_level=None)
last, seen, deadline = -1, set(), time.time() + 240
while True:
    cnt, mx = c.execute("SELECT count(*), coalesce(max(id), 0) FROM c").fetchone()
    if cnt != mx:
        sys.exit(f"anomaly: count {cnt} != max(id) {mx}")
    if cnt < last:
        sys.exit(f"count went backwards: {last} -> {cnt}")
    last = cnt
    seen.add(cnt)
    if cnt == total:
        break
    if time.time() > deadline:
        sys.exit(f"timeout at count {cnt}")
print(len(seen))
PYEOF
    $PY "$TEST_TMP/reader.py" "$M/conc.db" 4000 >"$TEST_TMP/reader.out" 2>&1 &
    local rpid=$!
    $PY "$TEST_TMP/writer.py" "$M/conc.db" 1 2000 &
    local w1=$!
    $PY "$TEST_TMP/writer.py" "$M/conc.db" 2 2000 &
    local w2=$!
    wait $w1 || fail "writer 1 failed"
    wait $w2 || fail "writer 2 failed"
    wait $rpid || fail "reader failed: $(cat "$TEST_TMP/reader.out")"
    local distinct
    distinct=$(cat "$TEST_TMP/reader.out")
    note "reader saw $distinct distinct counts"
    ((distinct > 10)) || fail "reader saw only $distinct distinct counts: not concurrent"
    [[ $(sqlite3 "$M/conc.db" 'SELECT count(*), count(DISTINCT id), sum(w=1), sum(w=2) FROM c') == "4000|4000|2000|2000" ]] ||
        fail "final rows"
    [[ $(sqlite3 "$M/conc.db" 'PRAGMA integrity_check') == ok ]] || fail "integrity (conc)"

    # --- lock conflicts between processes -------------------------------------------------
    $PY - "$M/conc.db" <<'PYEOF' || fail "database is locked"
import sqlite3, subprocess, sys
db = sys.argv[1]
a = sqlite3.connect(db, isolation_level=None)
a.execute("BEGIN IMMEDIATE")
a.execute("INSERT INTO c(w, v) VALUES (9, 'held')")
r = subprocess.run(["sqlite3", db, "INSERT INTO c(w, v) VALUES (8, 'other')"],
                   capture_output=True, text=True)
assert r.returncode != 0 and "database is locked" in r.stderr, (r.returncode, r.stderr)
a.execute("COMMIT")
r = subprocess.run(["sqlite3", db, "INSERT INTO c(w, v) VALUES (8, 'other')"],
                   capture_output=True, text=True)
assert r.returncode == 0, r.stderr
assert a.execute("SELECT count(*) FROM c WHERE w IN (8, 9)").fetchone()[0] == 2
PYEOF
    $PY - "$M/lockfile" <<'PYEOF' || fail "fcntl byte-range locks"
import fcntl, os, subprocess, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100)
child = r'''
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 100); print("same-byte-locked")
except OSError: print("same-byte-refused")
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 101); print("other-byte-locked")
'''
out = subprocess.run([sys.executable, "-c", child, p], capture_output=True, text=True)
assert out.stdout.split() == ["same-byte-refused", "other-byte-locked"], (out.stdout, out.stderr)
fcntl.lockf(fd, fcntl.LOCK_UN, 1, 100)
out = subprocess.run([sys.executable, "-c", child, p], capture_output=True, text=True)
assert out.stdout.split()[0] == "same-byte-locked", out.stdout
PYEOF

    # --- the backing files hold the same data after unmount -------------------------------
    local via_mount
    via_mount=$(sqlite3 "$M/conc.db" 'SELECT count(*), sum(length(v)), max(id) FROM c')
    unmount_fs "$M"
    [[ $(sqlite3 "$B/conc.db" 'SELECT count(*), sum(length(v)), max(id) FROM c') == "$via_mount" ]] ||
        fail "backing database differs after unmount"
    [[ $(sqlite3 "$B/conc.db" 'PRAGMA integrity_check') == ok ]] || fail "backing integrity"
    [[ $(sqlite3 "$B/shell.db" 'SELECT count(*) FROM t') == 5000 ]] || fail "backing shell.db"
}

run_mode default
run_mode writeback -o writeback
run_mode spin -o spin_us=50,noxattr
echo "ok"
