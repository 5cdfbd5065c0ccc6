#!/usr/bin/env bash
# 61-repl-checkpoints: checkpoints of every mode (PASSIVE, FULL, RESTART, TRUNCATE) and
# wal_autocheckpoint make the replicator start several generations, each with a .dep naming
# an older generation of the chain; the restore is exact at the end and at a point in time
# between generations (bottomless-cli restore -u).
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1

# One connection for the whole run (closing the last one would checkpoint by itself).
cat >"$TEST_TMP/app.py" <<'EOF'
import json, subprocess, sys, time
db, status, outdir = sys.argv[1], sys.argv[2], sys.argv[3]

def synced():
    with open(status) as f:
        d = [x for x in json.load(f)["databases"] if x["path"] == "app.db"]
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
"$PY" "$TEST_TMP/app.py" "$M/app.db" "$M/.bottomless/status" "$TEST_TMP" || fail "app failed"
mid_sum=$(cat "$TEST_TMP/mid.sum") end_sum=$(cat "$TEST_TMP/end.sum")
mid_time=$(date -u -d "@$(cat "$TEST_TMP/mid.time")" +%Y-%m-%dT%H:%M:%SZ)

mapfile -t G < <(gens app.db)
note "${#G[@]} generations: ${G[*]}"
((${#G[@]} >= 5)) || fail "expected at least 5 generations, got ${#G[@]}"
n_dep=0
for ((i = 0; i < ${#G[@]}; i++)); do
    dep=$(dep_of app.db "${G[i]}")
    if [[ -n $dep ]]; then
        n_dep=$((n_dep + 1))
        found=0
        for ((k = i + 1; k < ${#G[@]}; k++)); do [[ ${G[k]} == "$dep" ]] && found=1; done
        ((found)) || fail "generation ${G[i]}: .dep $dep is not an older generation"
    fi
done
((n_dep == ${#G[@]} - 1)) || fail "$n_dep of ${#G[@]} generations have a .dep (all but the first)"
[[ -z $(dep_of app.db "${G[-1]}") ]] || fail "the oldest generation has a .dep"

cli -d app.db restore -o "$TEST_TMP/end.db" >/dev/null || fail "restore failed"
[[ $(sha3 "$TEST_TMP/end.db") == "$end_sum" ]] || fail "restore at the end differs"
cli -d app.db restore -u "$mid_time" -o "$TEST_TMP/mid.db" >/dev/null || fail "PIT restore failed"
[[ $(sha3 "$TEST_TMP/mid.db") == "$mid_sum" ]] ||
    fail "point-in-time restore at $mid_time differs (rows: $(sqlite3 "$TEST_TMP/mid.db" 'select count(*) from t'))"
[[ $(sqlite3 "$TEST_TMP/mid.db" "select count(*) from t") == 150 ]] || fail "PIT row count"
unmount_fs "$M"
note ok
