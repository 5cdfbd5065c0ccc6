#!/usr/bin/env bash
# 62-repl-concurrent: two processes write and read one WAL database through the mount at the
# same time for 30 s (mptest-like: interleaved write transactions, reads that check what the
# other process committed, quick_check, checkpoints). No SQLITE_CORRUPT / SQLITE_PROTOCOL /
# malformed errors; afterwards the bucket catches up and the restore equals the database.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

SECS=${BFS_CONC_SECS:-30}
repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1

sqlite3 "$M/app.db" "pragma journal_mode=wal; create table t(id integer primary key, proc int, seq int, v blob); create index t_proc on t(proc, seq);" >/dev/null

cat >"$TEST_TMP/worker.py" <<'EOF'
import random, sqlite3, sys, time
db, me, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(me)
c = sqlite3.connect(db, isolation_level=None, timeout=30)
c.execute("pragma synchronous=NORMAL")
seq = 0
reads = 0
end = time.time() + secs
def fatal(e):
    m = str(e).lower()
    return any(w in m for w in ("corrupt", "malformed", "protocol", "disk i/o"))
while time.time() < end:
    try:
        op = rnd.random()
        if op < 0.6:
            c.execute("begin immediate")
            c.execute("insert into t(proc, seq, v) values (?, ?, randomblob(?))",
                      (me, seq + 1, rnd.choice([50, 500, 3000])))
            c.execute("commit")
            seq += 1
        elif op < 0.9:
            c.execute("begin")
            mine = c.execute("select count(*), coalesce(max(seq),0) from t where proc=?",
                             (me,)).fetchone()
            total = c.execute("select count(*) from t").fetchone()[0]
            c.execute("commit")
            assert mine == (seq, seq), (mine, seq)   # my own commits are all visible
            assert total >= seq
            reads += 1
        elif op < 0.98:
            r = c.execute("pragma quick_check").fetchone()[0]
            assert r == "ok", r
        else:
            c.execute("pragma wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError as e:
        if fatal(e):
            print("FATAL proc %d: %s" % (me, e)); sys.exit(2)
        try:
            c.execute("rollback")
        except sqlite3.OperationalError:
            pass
    except sqlite3.DatabaseError as e:
        print("FATAL proc %d: %s" % (me, e)); sys.exit(2)
print("proc %d: %d commits %d reads" % (me, seq, reads))
EOF
"$PY" "$TEST_TMP/worker.py" "$M/app.db" 1 "$SECS" >"$TEST_TMP/w1.out" 2>&1 &
w1=$!
"$PY" "$TEST_TMP/worker.py" "$M/app.db" 2 "$SECS" >"$TEST_TMP/w2.out" 2>&1 &
w2=$!
on_exit bash -c "kill $w1 $w2 2>/dev/null || true"
rc1=0 rc2=0
wait "$w1" || rc1=$?
wait "$w2" || rc2=$?
cat "$TEST_TMP/w1.out" "$TEST_TMP/w2.out" >&2
((rc1 == 0 && rc2 == 0)) || fail "a worker failed (exit $rc1 / $rc2)"
c1=$(sed -nE 's/^proc 1: ([0-9]+) commits.*/\1/p' "$TEST_TMP/w1.out")
c2=$(sed -nE 's/^proc 2: ([0-9]+) commits.*/\1/p' "$TEST_TMP/w2.out")
((c1 > 0 && c2 > 0)) || fail "a worker committed nothing"
[[ $(sqlite3 "$M/app.db" "pragma integrity_check") == ok ]] || fail "integrity_check"
[[ $(sqlite3 "$M/app.db" "select count(*) from t") == $((c1 + c2)) ]] || fail "row count"
repl_wait_synced 180 "$M" app.db
sum=$(sha3 "$M/app.db")
cli -d app.db restore -o "$TEST_TMP/r.db" >/dev/null || fail "restore failed"
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "restore differs from the local database"
unmount_fs "$M"
note "ok: $c1 + $c2 commits"
