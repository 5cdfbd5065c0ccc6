#!/usr/bin/env bash
# 81-demo: `make demo` (tests/lib/demo.sh) keeps working. Runs it twice in a row in a private
# DEMO_DIR with its own S3 server on its own ports: each run must exit 0, show the lazy restore
# with equal row counts and hashes, and leave no mount, no daemon, no S3 server and no files.
# Then: a failing step (the S3 server's port taken) exits non-zero and cleans up, and a SIGINT
# (Ctrl-C) in the middle of a run unmounts, stops everything and exits 130.
# timeout: 900
source "$BFS_ROOT/tests/lib/common.sh"

DEMO=$TEST_TMP/demo
export DEMO_DIR=$DEMO

# leftovers of a demo run in $DEMO: a mount, a daemon or a Swift server
leftovers() {
    local found=0
    if grep -q " $DEMO/mnt " /proc/mounts; then echo "mount $DEMO/mnt"; found=1; fi
    if pgrep -f "bottomlessfs -f $DEMO/data" >/dev/null; then echo "daemon"; found=1; fi
    if pgrep -f "swift-.*-server $DEMO/swift/" >/dev/null; then echo "swift"; found=1; fi
    return $((!found))
}
kill_leftovers() {
    local p
    for p in $(pgrep -f "bottomlessfs -f $DEMO/data") $(pgrep -f "swift-.*-server $DEMO/swift/"); do
        kill -KILL "$p" 2>/dev/null || true
    done
}
on_exit kill_leftovers

for run in 1 2; do
    note "demo run $run"
    rc=0
    bash "$BFS_ROOT/tests/lib/demo.sh" >"$TEST_TMP/run$run.out" 2>&1 </dev/null || rc=$?
    if ((rc != 0)); then
        tail -n 40 "$TEST_TMP/run$run.out" >&2
        fail "demo run $run exited $rc"
    fi
    out=$TEST_TMP/run$run.out
    grep -q '^rows in shop.db: 100$' "$out" || fail "run $run: no row count before"
    grep -q '^rows before: 100   rows after the lazy restore: 100$' "$out" ||
        fail "run $run: lazy restore row counts missing or different"
    grep -q '^content hash (sqlite3 .sha3sum) identical: [0-9a-f]\{56\}$' "$out" ||
        fail "run $run: hash line missing"
    grep -q 'lazy: restored db=shop.db' "$out" || fail "run $run: the daemon did not log the lazy restore"
    grep -q '^rows in the CLI restore: 100, content hash identical$' "$out" ||
        fail "run $run: CLI restore line missing"
    grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12} \(created: ' "$out" ||
        fail "run $run: no generation in bottomless-cli ls -v output"
    grep -q 'consistent WAL frame: 100' "$out" || fail "run $run: ls -v lacks the last frame"
    grep -q '^==> Demo finished: every step worked$' "$out" || fail "run $run: no final line"
    if grep -q $'\033' "$out"; then fail "run $run: escape codes in output that is not a terminal"; fi
    if leftovers; then fail "run $run left things behind"; fi
    [[ ! -e $DEMO ]] || fail "run $run: $DEMO not removed after success"
done

# a step fails: the S3 server cannot start because its port is taken (by the harness's Swift)
note "demo with a busy port"
port=${BFS_S3_ENDPOINT##*:}
rc=0
DEMO_PORT=$port bash "$BFS_ROOT/tests/lib/demo.sh" >"$TEST_TMP/busy.out" 2>&1 </dev/null || rc=$?
((rc != 0)) || fail "demo with a busy port exited 0"
grep -q 'already in use' "$TEST_TMP/busy.out" || fail "busy port: cause not printed"
grep -q '^demo: error: ' "$TEST_TMP/busy.out" || fail "busy port: no 'demo: error:' line"
if leftovers; then fail "failed demo left things behind"; fi
curl -sf -o /dev/null "$BFS_S3_ENDPOINT/healthcheck" || fail "the harness's S3 server was harmed"

# Ctrl-C: SIGINT to the demo's process group once the database has been written. Python starts
# it in its own session with SIGINT at its default (a background job would have it ignored).
note "demo interrupted by SIGINT"
/usr/bin/python3 - "$TEST_TMP/int.out" "$BFS_ROOT/tests/lib/demo.sh" "$TEST_TMP/int" <<'PY' &
import signal, subprocess, sys
p = subprocess.Popen(["bash", sys.argv[2]], stdin=subprocess.DEVNULL,
                     stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT,
                     start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
open(sys.argv[3] + ".pid", "w").write("%d\n" % p.pid)
rc = p.wait()
open(sys.argv[3] + ".rc", "w").write("%d\n" % (128 - rc if rc < 0 else rc))
PY
wait_until 10 test -s "$TEST_TMP/int.pid"
pid=$(cat "$TEST_TMP/int.pid")
on_exit bash -c 'kill -KILL -- "-$1" 2>/dev/null; true' _ "$pid"
wait_until 300 grep -q '^rows in shop.db: 100$' "$TEST_TMP/int.out"
grep -q " $DEMO/mnt " /proc/mounts || fail "not mounted at the time of the SIGINT"
kill -INT -- "-$pid"
wait_until 120 test -s "$TEST_TMP/int.rc"
rc=$(cat "$TEST_TMP/int.rc")
tail -n 5 "$TEST_TMP/int.out" | sed 's/^/    | /' >&2
((rc == 130)) || fail "interrupted demo exited $rc, not 130"
grep -q 'demo: interrupted, cleaning up' "$TEST_TMP/int.out" || fail "no interruption message"
if leftovers; then fail "interrupted demo left things behind"; fi
note "demo ok: two runs, a failing step and a SIGINT, each cleaned up"
