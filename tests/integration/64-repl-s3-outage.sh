#!/usr/bin/env bash
# 64-repl-s3-outage: the S3 endpoint goes down for 20 s while an app writes (about 50
# transactions per second, with checkpoints): the app never sees an error, the status file
# shows the backlog growing during the outage, and after S3 returns the lag drains to 0 and
# the restore equals the local database.
# timeout: 400
# serial: it stops the shared S3 server
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

OUTAGE_S=${BFS_OUTAGE_SECS:-20}
repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt LOG=$TEST_TMP/committed.log
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o batch_interval=1

cat >"$TEST_TMP/app.py" <<'EOF'
import sqlite3, sys, time
db, log, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
c = sqlite3.connect(db, isolation_level=None, timeout=10)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=NORMAL")
c.execute("pragma wal_autocheckpoint=300")
c.execute("create table t(id integer primary key, v blob)")
out = open(log, "a", buffering=1)
end = time.time() + secs
i = 0
while time.time() < end:
    i += 1
    c.execute("insert into t(id, v) values (?, randomblob(?))", (i, 100 + (i * 37) % 3000))
    out.write("%d\n" % i)
    time.sleep(0.02)   # pacing: about 50 transactions per second
c.close()
print("app committed %d transactions" % i)
EOF
"$PY" "$TEST_TMP/app.py" "$M/app.db" "$LOG" $((OUTAGE_S + 25)) >"$TEST_TMP/app.out" 2>&1 &
app=$!
on_exit bash -c "kill $app 2>/dev/null || true"
logged_at_least() { [[ -f $LOG ]] && (($(wc -l <"$LOG") >= $1)); }
uploaded_some() {
    repl_status "$M" | "$PY" -c '
import json, sys
d = [x for x in json.load(sys.stdin)["databases"] if x["path"] == "app.db"]
sys.exit(0 if d and d[0]["batches"] > 0 else 1)'
}
wait_until 60 logged_at_least 100
wait_until 60 uploaded_some

swift_stop_proxy
t0=$(date +%s)
note "S3 down at $(wc -l <"$LOG") commits"
backlog() {
    repl_status "$M" | "$PY" -c '
import json, sys
d = [x for x in json.load(sys.stdin)["databases"] if x["path"] == "app.db"][0]
sys.exit(0 if d["lag_s"] > 2 and d["last_uploaded_frame"] < d["last_committed_frame"] or d["s3_outage"] and d["lag_s"] > 2 else 1)'
}
wait_until $((OUTAGE_S + 5)) backlog
until (($(date +%s) - t0 >= OUTAGE_S)); do
    kill -0 "$app" 2>/dev/null || break
    sleep 0.5 # the outage lasts OUTAGE_S seconds (scenario time, not synchronisation)
done
repl_status "$M" >"$TEST_TMP/status-during-outage.json"
note "S3 back after $(($(date +%s) - t0)) s at $(wc -l <"$LOG") commits; status: $(head -c 600 "$TEST_TMP/status-during-outage.json")"
swift_start_proxy

wait "$app" || { cat "$TEST_TMP/app.out" >&2; fail "the app failed during the S3 outage"; }
cat "$TEST_TMP/app.out" >&2
repl_wait_synced 180 "$M" app.db
sum=$(sha3 "$M/app.db")
cli -d app.db restore -o "$TEST_TMP/r.db" >/dev/null || fail "restore failed"
[[ $(sha3 "$TEST_TMP/r.db") == "$sum" ]] || fail "restore differs from the local database"
last=$(tail -n 1 "$LOG")
[[ $(sqlite3 "$TEST_TMP/r.db" "select count(*) from t") == "$last" ]] || fail "restore lacks rows"
unmount_fs "$M"
note "ok: $last transactions"
