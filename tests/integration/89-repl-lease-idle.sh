#!/usr/bin/env bash
# 89-repl-lease-idle: a database gives its writer lease up once it has been idle for a whole
# lease_ttl, so an idle mount makes no S3 requests at all (renewing cost a GET and a PUT every
# ttl/3 for every database the mount had seen, forever), and takes it again before its next
# upload. While the app commits, the lease stays in the bucket; after lease_ttl without a
# commit it is deleted; the next commit brings it back, continues the same generation (the
# reclaim's bucket check finds it unchanged) and restores exactly. A second daemon writing the
# same database while the first is idle takes the lease; the first, writing again, is refused
# until the second goes idle, then continues in a new generation descending from the second's
# newest: one history in the bucket, and its restore equals the first daemon's database.
# timeout: 300
# serial: it counts S3 requests over idle lease periods
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
BA=$TEST_TMP/backA BB=$TEST_TMP/backB MA=$TEST_TMP/mntA MB=$TEST_TMP/mntB
mkdir -p "$BA" "$BB" "$MA" "$MB"
TTL=3
lease_there() { lease_get app.db "$TEST_TMP/lease"; }
lease_gone() {
    local rc=0
    lease_get app.db "$TEST_TMP/lease" || rc=$?
    ((rc == 1))
}
s3_requests() { # puts+gets+lists+deletes of MNT's daemon
    "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["s3"]
print(s["puts"] + s["gets"] + s["lists"] + s["deletes"])' "$1/.bottomless/status"
}

mount_fs "$BA" "$MA" -o batch_interval=1,lease_ttl=$TTL
LOGA=$BFS_FS_LOG PIDA=$BFS_FS_PID
sqlite3 "$MA/app.db" "pragma journal_mode=wal; create table t(who, n); insert into t values ('A', 1);" >/dev/null

# --- held while written: commits every 0.5 s for 3 ttl, the lease never leaves -------------------
"$PY" - "$MA/app.db" <<'EOF' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
for i in range(2, 20):
    c.execute("insert into t values ('A', ?)", (i,))
    time.sleep(0.5)
EOF
writer=$!
wait_until 30 lease_there
while kill -0 "$writer" 2>/dev/null; do
    lease_there || { kill "$writer"; fail "the lease left the bucket while the app was writing"; }
    sleep 0.3
done
wait "$writer" || fail "the writer failed"
repl_wait_synced 30 "$MA" app.db
gens_before=$(gens app.db)

# --- idle: the lease is given up, and the mount goes quiet ---------------------------------------
wait_until 30 lease_gone
n0=$(s3_requests "$MA")
sleep $((3 * TTL)) # a measurement window, not a synchronisation: nothing may happen in it
n1=$(s3_requests "$MA")
note "idle: $((n1 - n0)) S3 requests in $((3 * TTL)) s (renewals would have made $((2 * 3 * 3)))"
((n1 == n0)) || fail "an idle mount made $((n1 - n0)) S3 requests in $((3 * TTL)) s"

# --- the next commit takes it back and continues the same generation ----------------------------
sqlite3 "$MA/app.db" "insert into t values ('A', 100)"
repl_wait_synced 30 "$MA" app.db
lease_there || fail "the lease was not taken again for the upload"
grep -q "^holder .*pid=$PIDA " "$TEST_TMP/lease" || fail "the lease is not daemon A's"
# the bucket check found it unchanged: no divergence; the history continues (the sqlite3 shell's
# new -wal begins a generation, as after any last close, whose .dep is the previous newest)
grep -q 'diverged' "$LOGA" && fail "the reclaim saw a divergence: $(grep -m1 diverged "$LOGA")"
newest_before=$(head -n 1 <<<"$gens_before") newest=$(gens app.db | head -n 1)
[[ $newest == "$newest_before" || $(dep_of app.db "$newest") == "$newest_before" ]] ||
    fail "the history did not continue: newest $newest, before $newest_before"
cli -d app.db restore -o "$TEST_TMP/a1.db" >/dev/null 2>&1 || fail "restore after the reclaim"
[[ $(sha3 "$TEST_TMP/a1.db") == $(sha3 "$MA/app.db") ]] || fail "restore differs after the reclaim"

# --- another writer while A is idle ---------------------------------------------------------------
wait_until 30 lease_gone
mount_fs "$BB" "$MB" -o batch_interval=1,lease_ttl=$TTL
LOGB=$BFS_FS_LOG
sqlite3 "$MB/app.db" "insert into t values ('B', 1)" # lazily restored from the bucket
repl_wait_synced 30 "$MB" app.db
gen_b=$(gens app.db | head -n 1)
grep -q 'lease: refused' "$LOGB" && fail "B was refused the lease of an idle database"
# A writes again: B holds the lease (it just committed), so A stages locally and says who
"$PY" - "$MA/app.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("insert into t values ('A', 200)")
EOF
wait_until 30 grep -q 'lease: refused db=app.db' "$LOGA"
# B goes idle and gives the lease up; A takes it and continues in a new generation whose .dep
# names B's newest
wait_until 60 grep -q 'lease: acquired db=app.db' "$LOGA"
repl_wait_synced 60 "$MA" app.db
gen_a=$(gens app.db | head -n 1)
[[ $gen_a != "$gen_b" ]] || fail "A did not begin a generation of its own after B's"
chain=$(descends_from app.db "$gen_a" "$gen_b") ||
    fail "A's newest generation does not descend from B's: $chain"
n=$(roots app.db)
((n == 1)) || fail "$n generations without a .dep (a forked history): $(gens app.db | tr '\n' ' ')"
cli -d app.db restore -o "$TEST_TMP/a2.db" >/dev/null 2>&1 || fail "restore after the handover"
[[ $(sha3 "$TEST_TMP/a2.db") == $(sha3 "$MA/app.db") ]] || fail "restore differs from A's database"
[[ $(sqlite3 "$TEST_TMP/a2.db" "pragma integrity_check") == ok ]] || fail "restore is corrupt"
unmount_fs "$MB"
unmount_fs "$MA"
fs_check_log "$LOGA"
note "lease: held while written, given up when idle (0 requests), taken back, handed over"
