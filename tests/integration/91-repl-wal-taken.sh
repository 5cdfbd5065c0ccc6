#!/usr/bin/env bash
# 91-repl-wal-taken: at a WAL restart the daemon takes the old -wal file itself as a staged
# segment instead of copying its frames ("stolen WALs" in wal/replicator.c), and the app goes
# on with a new empty file under the same open handles. Checked in write-through and writeback
# mode, with a second connection that keeps reading (and a third process opening the database
# in between): many WAL restarts are taken (status "wals_taken"), the app's data stays intact
# (integrity_check, row counts), no -wal frames leak into the staging area after the flush,
# and the bucket restores exactly, also at a point in time between restarts.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket

cat >"$TEST_TMP/app.py" <<'EOF'
import sqlite3, subprocess, sys, time
db, n = sys.argv[1], int(sys.argv[2])
w = sqlite3.connect(db, isolation_level=None)
w.execute("pragma journal_mode=wal")
w.execute("pragma synchronous=normal")
w.execute("pragma wal_autocheckpoint=200")
w.execute("create table t(id integer primary key, v blob)")
r = sqlite3.connect(db, isolation_level=None)
for i in range(1, n + 1):
    w.execute("insert into t(id, v) values (?, randomblob(?))", (i, 100 + i % 700))
    if i % 250 == 0:
        got = r.execute("select count(*), sum(length(v)) from t").fetchone()
        assert got[0] == i, (i, got)
    if i == n // 2:
        out = subprocess.run(["sqlite3", db, "select count(*) from t; pragma quick_check;"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == [str(i), "ok"], out
assert w.execute("pragma integrity_check").fetchone()[0] == "ok"
r.close()
w.close()
EOF

# run NAME [MOUNT OPTIONS]
run() {
    local name=$1 opts=${2:+,$2}
    local B=$TEST_TMP/back-$name M=$TEST_TMP/mnt-$name
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o "batch_interval=1$opts"
    "$PY" "$TEST_TMP/app.py" "$M/$name.db" 6000 || fail "$name: app failed"
    local taken
    taken=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["databases"]
print(sum(x.get("wals_taken", 0) for x in d))' "$M/.bottomless/status")
    note "$name: wals_taken=$taken"
    ((taken >= 5)) || fail "$name: only $taken WAL restarts took the -wal (want >= 5)"
    repl_wait_synced 120 "$M" "$name.db"
    local want
    want=$(sha3 "$M/$name.db")
    leftover=$(find "$B/.bottomless" -name '*.wseg' -o -name '*.new.tmp' | head -3)
    [[ -z $leftover ]] || fail "$name: staged files left after the flush: $leftover"
    unmount_fs "$M"
    [[ $(sha3 "$B/$name.db") == "$want" ]] || fail "$name: backing db differs after unmount"
    local check
    check=$(sqlite3 "$B/$name.db" "pragma integrity_check; select count(*) from t")
    [[ $check == $'ok\n6000' ]] || fail "$name: backing db damaged: $check"
    cli -d "$name.db" restore -o "$TEST_TMP/$name.restored" >"$TEST_TMP/$name.restore.log" 2>&1 ||
        { cat "$TEST_TMP/$name.restore.log" >&2; fail "$name: restore failed"; }
    [[ $(sha3 "$TEST_TMP/$name.restored") == "$want" ]] || fail "$name: restore is not exact"
    [[ $(sqlite3 "$TEST_TMP/$name.restored" "pragma integrity_check") == ok ]] ||
        fail "$name: restored db fails integrity_check"
}

run wt
run wb writeback
