#!/usr/bin/env bash
# 72-rel-lease: two daemons (different BACKING_DIRs) pointed at the same bucket and db_name do
# not fork one database's history. The first takes the lease object "app.db.lease" (owner,
# expiry, holder description); the second refuses to upload app.db: its log names the holder,
# its status last_error says so, and the bucket keeps only the first daemon's generations while
# the second keeps writing locally. When the first unmounts (lease released), the second takes
# the lease, sees the bucket moved on, and continues in a NEW generation whose .dep names the
# first daemon's newest (the generations it began while refused are dropped, their content is
# in that generation's snapshot); its restore then equals its own database. A daemon killed and
# mounted again on the same BACKING_DIR takes its own lease back at once (same staging identity).
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
BA=$TEST_TMP/backA BB=$TEST_TMP/backB MA=$TEST_TMP/mntA MB=$TEST_TMP/mntB
mkdir -p "$BA" "$BB" "$MA" "$MB"

# A's lease lives long: a database idle for a whole ttl gives its lease up (and B would take it
# before A's unmount), and on a loaded machine the checks below can take the default 30 s
mount_fs "$BA" "$MA" -o batch_interval=1,lease_ttl=600
LOGA=$BFS_FS_LOG PIDA=$BFS_FS_PID
sqlite3 "$MA/app.db" "pragma journal_mode=wal; create table t(who, n); insert into t values ('A', 1);" >/dev/null
repl_wait_synced 60 "$MA" app.db
lease_get app.db "$TEST_TMP/lease" || fail "no lease object"
grep -q "^owner [0-9a-f]\{32\}$" "$TEST_TMP/lease" || { cat "$TEST_TMP/lease"; fail "lease has no owner"; }
grep -q "^holder .*pid=$PIDA " "$TEST_TMP/lease" || { cat "$TEST_TMP/lease"; fail "lease holder is not daemon A"; }
gens_a=$(gens app.db)
[[ $(wc -l <<<"$gens_a") -eq 1 ]] || fail "expected one generation: $gens_a"

# --- a second writer ---------------------------------------------------------------------------
# B's own app.db, made in its backing dir before the mount (an empty backing dir would show
# the bucket's app.db lazily instead)
sqlite3 "$BB/app.db" "pragma journal_mode=wal; create table t(who, n); insert into t values ('B', 1);" >/dev/null
mount_fs "$BB" "$MB" -o batch_interval=1
LOGB=$BFS_FS_LOG
for i in $(seq 2 20); do sqlite3 "$MB/app.db" "insert into t values ('B', $i)"; done
wait_until 60 grep -q 'lease: refused db=app.db holder=".*pid='"$PIDA"' ' "$LOGB"
note "B: $(grep -m1 'lease: refused' "$LOGB")"
wait_until 30 bash -c "grep -q 'another writer' '$MB/.bottomless/status'"
# A keeps replicating; B's writes never reach the bucket
sqlite3 "$MA/app.db" "insert into t values ('A', 2)"
repl_wait_synced 60 "$MA" app.db
gen_b=$("$PY" -c '
import json, sys
print(next(d["generation"] for d in json.load(open(sys.argv[1]))["databases"] if d["path"] == "app.db"))
' "$MB/.bottomless/status")
[[ -n $gen_b ]] || fail "B has no local generation"
gens app.db | grep -qxF "$gen_b" && fail "the second writer's generation $gen_b reached the bucket"
cli -d app.db restore -o "$TEST_TMP/a.db" >/dev/null 2>&1 || fail "restore while leased"
[[ $(sqlite3 "$TEST_TMP/a.db" "select group_concat(who || n) from t") == "A1,A2" ]] ||
    fail "bucket content is not A's: $(sqlite3 "$TEST_TMP/a.db" 'select * from t')"
repl_synced "$MB" app.db && fail "B claims to be synced while blocked"

# --- A goes away: B takes over in a new generation ---------------------------------------------
gens_a_newest=$(gens app.db | head -n 1) # gens: newest first; all A's (B uploaded nothing)
unmount_fs "$MA"
# A deleted its lease before exiting (Swift may lag a moment). B retries every third of its ttl
# and may take the lease before a poll sees the gap, so the check is only that A's is gone.
lease_not_a() {
    local rc=0
    lease_get app.db "$TEST_TMP/lease" || rc=$?
    ((rc == 1)) || { ((rc == 0)) && ! grep -q "^holder .*pid=$PIDA " "$TEST_TMP/lease"; }
}
wait_until 15 lease_not_a
wait_until 60 grep -q 'lease: acquired db=app.db' "$LOGB"
# B's next write starts a generation that descends from the bucket's newest (A's)
sqlite3 "$MB/app.db" "insert into t values ('B', 21)"
repl_wait_synced 90 "$MB" app.db
gen_b2=$(gens app.db | head -n 1)
note "A's newest gen $gens_a_newest, B's newest gen $gen_b2"
[[ $gen_b2 != "$gens_a_newest" ]] || fail "B did not start a generation of its own"
# B's newest descends from A's newest through .dep (B starts a snapshot generation naming A's
# at the takeover; the insert above may have begun before or after it)
chain=$(descends_from app.db "$gen_b2" "$gens_a_newest") ||
    fail "B's generation does not descend from A's newest: $chain"
# no fork: B's generations made while it was refused (each sqlite3 call above began one) never
# reach the bucket; the only generation without a .dep is A's first
n=$(roots app.db)
((n == 1)) || fail "$n generations without a .dep in the bucket (a forked history): $(gens app.db | tr '\n' ' ')"
cli -d app.db restore -o "$TEST_TMP/b.db" >/dev/null 2>&1 || fail "restore after takeover"
[[ $(sha3 "$TEST_TMP/b.db") == $(sha3 "$MB/app.db") ]] || fail "restore differs from B's database"

# --- a killed daemon takes its own lease back --------------------------------------------------
# a commit first, so that B holds the lease at the kill (idle for a whole ttl, it gave it up)
sqlite3 "$MB/app.db" "insert into t values ('B', 22)"
repl_wait_synced 60 "$MB" app.db
kill -KILL "$BFS_FS_PID"
wait "$BFS_FS_PID" 2>/dev/null || true
fusermount3 -u -z "$MB" || true
lease_get app.db "$TEST_TMP/lease" || fail "a killed daemon's lease should still be there"
mount_fs "$BB" "$MB" -o batch_interval=1
sqlite3 "$MB/app.db" "insert into t values ('B', 99)"
repl_wait_synced 30 "$MB" app.db
grep -q 'lease: refused' "$BFS_FS_LOG" && fail "the remounted daemon refused its own lease"
unmount_fs "$MB"
note "lease: refused, released, taken over with .dep, re-taken after a crash"
