#!/usr/bin/env bash
# 82-logging: the daemon's and the CLI's log lines. Every line of the daemon has a UTC
# timestamp, a level and "component: event"; lines about a database name it (db=); BOTTOMLESS_LOG
# sets the level of both binaries (-o log_level / --log-level win; a bad value is refused);
# notable events log one line each (mount, new generation, snapshot, lazy restore, upload
# failure, recovery, unmount); a 20 s S3 outage under writes (every connection reset at a fault
# proxy) logs a handful of lines, not a storm.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

OUTAGE_S=${BFS_OUTAGE_SECS:-20}
MAX_OUTAGE_LINES=30
repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"

TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
LINE="^$TS (error|warn |info |debug|trace) [a-z0-9_]+: "
# check_format LOG: every line is a log line (sanitizer reports would fail elsewhere)
check_format() {
    local bad
    bad=$(grep -vE "$LINE" "$1" || true)
    [[ -z $bad ]] || fail "lines without timestamp/level/component in $1:"$'\n'"$bad"
}

# --- BOTTOMLESS_LOG: refused when bad, honoured, and -o log_level wins ----------------------
rc=0
timeout 20 env BOTTOMLESS_LOG=loud "$BFS_BIN/bottomlessfs" -f "$B" "$M" >"$TEST_TMP/bad.out" 2>&1 ||
    rc=$?
((rc != 0)) || fail "BOTTOMLESS_LOG=loud accepted"
grep -q 'invalid log_level=loud.*BOTTOMLESS_LOG' "$TEST_TMP/bad.out" || fail "bad level: no clear message"
fs_is_mounted "$M" && fail "mounted despite a bad BOTTOMLESS_LOG"

BOTTOMLESS_LOG=debug mount_fs "$B" "$M" -o batch_interval=1
sqlite3 "$M/d.db" "pragma journal_mode=wal; create table t(x); insert into t values (1);" >/dev/null
repl_wait_synced 60 "$M" d.db
unmount_fs "$M"
grep -qE "^$TS debug " "$BFS_FS_LOG" || fail "BOTTOMLESS_LOG=debug: no debug line"
check_format "$BFS_FS_LOG"

BOTTOMLESS_LOG=debug mount_fs "$B" "$M" -o log_level=warn
sqlite3 "$M/d.db" "insert into t values (2);" >/dev/null
repl_wait_synced 60 "$M" d.db
unmount_fs "$M"
if grep -qE "^$TS (info |debug)" "$BFS_FS_LOG"; then
    fail "-o log_level=warn did not win over BOTTOMLESS_LOG=debug: $(head -3 "$BFS_FS_LOG")"
fi

# the CLI: quiet by default, BOTTOMLESS_LOG=debug shows its S3 requests, --log-level wins
cli -d d.db ls >"$TEST_TMP/cli.out" 2>"$TEST_TMP/cli.err" || fail "cli ls failed"
[[ ! -s $TEST_TMP/cli.err ]] || fail "cli ls wrote to stderr by default: $(head -3 "$TEST_TMP/cli.err")"
BOTTOMLESS_LOG=debug cli -d d.db ls >/dev/null 2>"$TEST_TMP/cli-debug.err" || fail "cli ls failed"
grep -qE "^$TS debug " "$TEST_TMP/cli-debug.err" || fail "cli: BOTTOMLESS_LOG=debug ignored"
if grep -qiE 'tester|testing|Signature=|Authorization' "$TEST_TMP/cli-debug.err"; then
    fail "cli debug log shows credentials"
fi
BOTTOMLESS_LOG=debug cli --log-level error -d d.db ls >/dev/null 2>"$TEST_TMP/cli-err.err"
[[ ! -s $TEST_TMP/cli-err.err ]] || fail "cli: --log-level error did not win over BOTTOMLESS_LOG"
rc=0
BOTTOMLESS_LOG=loud cli -d d.db ls >/dev/null 2>"$TEST_TMP/cli-bad.err" || rc=$?
((rc == 2)) || fail "cli: BOTTOMLESS_LOG=loud gave exit $rc, not 2"
grep -q BOTTOMLESS_LOG "$TEST_TMP/cli-bad.err" || fail "cli: bad BOTTOMLESS_LOG not named"

# --- default level: one line per notable event, then an S3 outage --------------------------
rm -rf "$B" && mkdir -p "$B"
MODE=$TEST_TMP/mode
PROXY=$(faultproxy_start "$MODE")
mount_fs "$B" "$M" -o batch_interval=1,endpoint="$PROXY"
LOG1=$BFS_FS_LOG
wait_until 10 grep -qE "^$TS info  main: mounted " "$LOG1"
# d.db is in the bucket, not in $B: opening it restores it lazily
[[ $(sqlite3 "$M/d.db" "select count(*) from t") == 2 ]] || fail "lazy restore of d.db"
wait_until 10 grep -qE "info  lazy: restored db=d\.db " "$LOG1"

cat >"$TEST_TMP/app.py" <<'EOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("pragma journal_mode=wal")
c.execute("create table if not exists t(id integer primary key, v blob)")
end = time.time() + float(sys.argv[2])
i = 0
while time.time() < end:
    i += 1
    c.execute("insert into t(v) values (randomblob(200))")
    time.sleep(0.05)
print(i)
EOF
"$PY" "$TEST_TMP/app.py" "$M/app.db" $((OUTAGE_S + 12)) >"$TEST_TMP/app.out" 2>&1 &
app=$!
on_exit bash -c "kill $app 2>/dev/null || true"
wait_until 30 grep -qE "info  snapshot: uploaded db=app\.db " "$LOG1"
grep -qE "info  replicator: new generation db=app\.db gen=" "$LOG1" || fail "no new generation line"
before=$(wc -l <"$LOG1")
echo reset >"$MODE" # every request until the mode changes
t0=$SECONDS
until ((SECONDS - t0 >= OUTAGE_S)); do
    kill -0 "$app" 2>/dev/null || fail "the app died during the outage"
    sleep 0.5 # the outage lasts OUTAGE_S seconds (scenario time, not synchronisation)
done
during=$(($(wc -l <"$LOG1") - before))
echo ok >"$MODE"
wait "$app" || fail "the app failed: $(cat "$TEST_TMP/app.out")"
repl_wait_synced 120 "$M" app.db
wait_until 30 grep -qE "upload: recovered db=app\.db" "$LOG1"
note "lines logged during the ${OUTAGE_S} s outage: $during"
sed -n "$((before + 1)),\$p" "$LOG1" | cut -c1-200 >&2
((during <= MAX_OUTAGE_LINES)) || fail "log storm: $during lines in a ${OUTAGE_S} s outage"
((during >= 1)) || fail "the outage was not logged at all"
grep -qE "warn  upload: failing db=app\.db " "$LOG1" || fail "no upload failure line"
n_fail=$(grep -cE "upload: failing db=app\.db " "$LOG1")
((n_fail == 1)) || fail "upload failure logged $n_fail times for one outage"
unmount_fs "$M"
grep -qE "info  main: unmounting " "$LOG1" || fail "no unmount line"
check_format "$LOG1"
# lines about one database name it
if grep -E "(replicator|snapshot|upload|lazy|restore): " "$LOG1" | grep -vE " db=|s3: " |
    grep -vE "replicator: (started|stopped)" >"$TEST_TMP/nodb.txt"; then
    [[ ! -s $TEST_TMP/nodb.txt ]] || fail "database events without db=: $(head -3 "$TEST_TMP/nodb.txt")"
fi
note "ok"
