#!/usr/bin/env bash
# 61-repl-checkpoints: checkpoints of every mode (PASSIVE, FULL, RESTART, TRUNCATE) and
# wal_autocheckpoint. By default a WAL restart (PASSIVE, FULL, RESTART, automatic) continues
# the generation and only the TRUNCATE starts a new one: exactly 2 generations. With
# -o generation_per_checkpoint every restart starts one (at least 5). Every generation but the
# first has a .dep naming an older one; the restore is exact at the end and at a point in time
# between the checkpoints (bottomless-cli restore -u).
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket

# One connection for the whole run (closing the last one would checkpoint by itself).
cat >"$TEST_TMP/app.py" <<'EOF'
import json, subprocess, sys, time
db, status, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
name = db.rsplit("/", 1)[1]

def synced():
    with open(status) as f:
        d = [x for x in json.load(f)["databases"] if x["path"] == name]
    return d and d[0]["lag_s"] == 0 and d[0]["staged_bytes"] == 0 and \
        not d[0]["snapshot_pending"] and d[0]["last_uploaded_frame"] >= d[0]["last_committed_frame"]

def wait_synced():
    end = time.time() + 120
    while not synced():
        if time.time() > end:
            sys.exit("replication did not catch up: " + open(status).read())
        time.sleep(0.2)

def sha3():
    return subprocess.run(["sqlite3", db, ".sha3sum"], check=True, capture_output=True,
                          text=True).stdout.strip()

import sqlite3
c = sqlite3.connect(db, isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("pragma wal_autocheckpoint=0")
c.execute("create table t(id integer primary key, phase text, v blob)")
n = 0
def rows(k, phase, size=300):
    global n
    for _ in range(k):
        n += 1
        c.execute("insert into t(id, phase, v) values (?, ?, randomblob(?))", (n, phase, size))

def ckpt(mode):
    r = c.execute("pragma wal_checkpoint(%s)" % mode).fetchone()
    assert r[0] == 0, (mode, r)

rows(50, "a"); ckpt("PASSIVE")
rows(50, "b"); ckpt("FULL")
rows(50, "c")
wait_synced()
t_mid = int(time.time())
open(outdir + "/mid.sum", "w").write(sha3())
open(outdir + "/mid.time", "w").write(str(t_mid))
while int(time.time()) <= t_mid + 1:   # later commits are in later seconds
    time.sleep(0.05)
rows(50, "d"); ckpt("RESTART")
rows(50, "e"); ckpt("TRUNCATE")
rows(50, "f")
c.execute("pragma wal_autocheckpoint=20")
rows(300, "g", 2000)
wait_synced()
open(outdir + "/end.sum", "w").write(sha3())
print("rows", n)
EOF

# run NAME MIN_GENS MAX_GENS [MOUNT OPTIONS]: the app on NAME.db in a mount of its own
run() {
    local name=$1 min=$2 max=$3 opts=${4:+,$4}
    local B=$TEST_TMP/back-$name M=$TEST_TMP/mnt-$name
    mkdir -p "$B" "$M"
    mount_fs "$B" "$M" -o "batch_interval=1$opts"
    "$PY" "$TEST_TMP/app.py" "$M/$name.db" "$M/.bottomless/status" "$TEST_TMP" || fail "app failed"
    mid_sum=$(cat "$TEST_TMP/mid.sum") end_sum=$(cat "$TEST_TMP/end.sum")
    mid_time=$(date -u -d "@$(cat "$TEST_TMP/mid.time")" +%Y-%m-%dT%H:%M:%SZ)

    mapfile -t G < <(gens "$name.db")
    note "$name: ${#G[@]} generations: ${G[*]}"
    ((${#G[@]} >= min && ${#G[@]} <= max)) ||
        fail "$name: expected $min to $max generations, got ${#G[@]}"
    n_dep=0
    for ((i = 0; i < ${#G[@]}; i++)); do
        dep=$(dep_of "$name.db" "${G[i]}")
        if [[ -n $dep ]]; then
            n_dep=$((n_dep + 1))
            found=0
            for ((k = i + 1; k < ${#G[@]}; k++)); do [[ ${G[k]} == "$dep" ]] && found=1; done
            ((found)) || fail "generation ${G[i]}: .dep $dep is not an older generation"
        fi
    done
    ((n_dep == ${#G[@]} - 1)) || fail "$n_dep of ${#G[@]} generations have a .dep (all but the first)"
    [[ -z $(dep_of "$name.db" "${G[-1]}") ]] || fail "the oldest generation has a .dep"

    cli -d "$name.db" restore -o "$TEST_TMP/end-$name.db" >/dev/null || fail "restore failed"
    [[ $(sha3 "$TEST_TMP/end-$name.db") == "$end_sum" ]] || fail "restore at the end differs"
    local mid=$TEST_TMP/mid-$name.db
    cli -d "$name.db" restore -u "$mid_time" -o "$mid" >/dev/null || fail "PIT restore failed"
    [[ $(sha3 "$mid") == "$mid_sum" ]] ||
        fail "point-in-time restore at $mid_time differs (rows: $(sqlite3 "$mid" 'select count(*) from t'))"
    [[ $(sqlite3 "$mid" "select count(*) from t") == 150 ]] || fail "PIT row count"
    unmount_fs "$M"
}

run cont 2 2
run each 5 1000 generation_per_checkpoint
note ok
