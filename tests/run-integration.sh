#!/usr/bin/env bash
# run-integration.sh [PATTERN] - run tests/integration/*PATTERN*.sh against one Swift S3 server.
#
# Starts Swift's S3 API (tests/lib/swift.sh) on a free 127.0.0.1 port for the whole run, runs
# each matching test with a timeout (600 s, or the test's "# timeout: N" line; BFS_TEST_TIMEOUT
# changes the default), prints PASS/FAIL per test, the tail of the log of each failure, and a
# final line "N passed, N failed". Tests run BFS_JOBS (default 2) at a time, each with its own
# bucket, directories and mounts; a test with a "# serial" line (it stops the shared S3 server,
# or measures time or load) runs alone, after the others. Exit 0 only if every test passed.
# With no PATTERN and no tests it fails; a PATTERN that matches no test is reported and exits 0 (e.g. no torture
# tests yet). Logs: build/test-results/<run>/<test>.log (BFS_RESULTS overrides the parent).
# BFS_INTEGRATION_DIR runs the tests of another directory (default tests/integration).
# Swift is stopped at exit, also on failure and Ctrl-C.
set -euo pipefail

# Sanitizer settings for SAN=1 builds: leaks inside libcriterion are not ours (tests/lsan.supp).
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

BFS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATTERN=${1:-}
BFS_BIN=${BFS_BIN:-$BFS_ROOT/build}
DEFAULT_TIMEOUT=${BFS_TEST_TIMEOUT:-600}
export BFS_ROOT BFS_BIN

shopt -s nullglob
TESTS=()
TESTDIR=${BFS_INTEGRATION_DIR:-$BFS_ROOT/tests/integration}
for t in "$TESTDIR"/*.sh; do
    [[ -z $PATTERN || $(basename "$t") == *"$PATTERN"* ]] && TESTS+=("$t")
done
if ((${#TESTS[@]} == 0)); then
    if [[ -n $PATTERN ]]; then
        echo "NOTE: no integration test in $TESTDIR matches '$PATTERN'; nothing run"
        echo "0 passed, 0 failed"
        exit 0
    fi
    echo "ERROR: no integration tests found in $TESTDIR" >&2
    echo "0 passed, 0 failed"
    exit 1
fi

RUN_ID=$(date +%Y%m%d-%H%M%S)-$$
RESULTS=${BFS_RESULTS:-$BFS_ROOT/build/test-results}/$RUN_ID
mkdir -p "$RESULTS"
ln -sfn "$RUN_ID" "$(dirname "$RESULTS")/latest" 2>/dev/null || true
BFS_TMP=$(mktemp -d /tmp/bfs-run.XXXXXX)
BFS_SWIFT_DIR=$BFS_TMP/swift
export BFS_TMP BFS_SWIFT_DIR BFS_RESULTS_DIR=$RESULTS

JOBS=${BFS_JOBS:-2}
((JOBS >= 1)) || JOBS=1
declare -A RUNNING=() # pid of a running test's timeout(1) -> its script
declare -A STARTED=() # pid -> $SECONDS at its start
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    local pid alive
    for pid in "${!RUNNING[@]}"; do
        kill -TERM "$pid" 2>/dev/null # timeout(1) passes it on to the test
    done
    for ((i = 0; i < 150; i++)); do
        alive=0
        for pid in "${!RUNNING[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${!RUNNING[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    bash "$BFS_ROOT/tests/lib/swift.sh" stop "$BFS_SWIFT_DIR" 2>/dev/null
    if [[ ${BFS_KEEP_TMP:-0} == 1 ]]; then
        echo "kept $BFS_TMP"
    else
        rm -rf --one-file-system "$BFS_TMP" 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# pick_port: a base port P with P..P+3 free on 127.0.0.1, below the ephemeral range
pick_port() {
    /usr/bin/python3 - <<'EOF'
import random, socket
for _ in range(500):
    base = random.randrange(20000, 32000, 4)
    socks = []
    try:
        for i in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", base + i))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    raise SystemExit("no free port range found")
EOF
}

echo "Starting Swift S3 API on 127.0.0.1 (data in $BFS_SWIFT_DIR)..."
started=0
for attempt in 1 2 3; do
    PORT=$(pick_port)
    if bash "$BFS_ROOT/tests/lib/swift.sh" start "$BFS_SWIFT_DIR" "$PORT" \
        >"$RESULTS/swift-start.log" 2>&1; then
        started=1
        break
    fi
    echo "Swift did not start on port $PORT (attempt $attempt):"
    tail -n 20 "$RESULTS/swift-start.log" | sed 's/^/    /'
    bash "$BFS_ROOT/tests/lib/swift.sh" stop "$BFS_SWIFT_DIR" >/dev/null 2>&1 || true
done
if ((!started)); then
    echo "ERROR: could not start Swift; no test was run"
    echo "0 passed, ${#TESTS[@]} failed"
    exit 1
fi

export BFS_S3_ENDPOINT=http://127.0.0.1:$PORT
export LIBSQL_BOTTOMLESS_ENDPOINT=$BFS_S3_ENDPOINT
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=test:tester
export LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=testing
export LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
echo "Swift S3 API ready at $BFS_S3_ENDPOINT; logs in $RESULTS"

passed=0
failed=0
FAILED_NAMES=()

limit_of() {
    local limit
    limit=$(sed -nE 's/^#[[:space:]]*timeout:[[:space:]]*([0-9]+).*/\1/p' "$1" | head -n 1)
    echo "${limit:-$DEFAULT_TIMEOUT}"
}

start_test() {
    local t=$1 name
    name=$(basename "$t" .sh)
    # a previous test may have left the S3 endpoint down
    if ! bash "$BFS_ROOT/tests/lib/swift.sh" status "$BFS_SWIFT_DIR"; then
        bash "$BFS_ROOT/tests/lib/swift.sh" start-proxy "$BFS_SWIFT_DIR" >>"$RESULTS/swift-start.log" 2>&1 ||
            echo "WARNING: Swift proxy is down and did not restart"
    fi
    # in the background + wait, so that Ctrl-C reaches our trap at once
    timeout --kill-after=15 "$(limit_of "$t")" bash "$t" </dev/null >"$RESULTS/$name.log" 2>&1 &
    RUNNING[$!]=$t
    STARTED[$!]=$SECONDS
}

# Waits for one running test to end and reports it.
reap_test() {
    local pid= rc=0
    wait -n -p pid "${!RUNNING[@]}" 2>/dev/null || rc=$? # 2>/dev/null: no "Killed" job notice
    [[ -n $pid ]] || return 0
    local t=${RUNNING[$pid]} secs=$((SECONDS - ${STARTED[$pid]}))
    unset "RUNNING[$pid]" "STARTED[$pid]"
    local name limit log
    name=$(basename "$t" .sh)
    limit=$(limit_of "$t")
    log=$RESULTS/$name.log
    if ((rc == 0)); then
        passed=$((passed + 1))
        echo "PASS $name (${secs}s)"
    else
        failed=$((failed + 1))
        FAILED_NAMES+=("$name")
        if ((rc == 124 || (rc == 137 && secs >= limit))); then
            echo "FAIL $name (timeout after ${limit}s)"
        elif ((rc > 128)); then
            echo "FAIL $name (killed by signal $((rc - 128)), ${secs}s)"
        else
            echo "FAIL $name (exit $rc, ${secs}s)"
        fi
        echo "---- last 40 lines of $log ----"
        tail -n 40 "$log" | sed 's/^/    /'
        echo "----"
    fi
}

# The tests that may share the machine first, then the serial ones, each alone: one wait for
# the lanes to drain instead of one per serial test.
SERIAL=()
for t in "${TESTS[@]}"; do
    if grep -qE '^#[[:space:]]*serial\b' "$t"; then
        SERIAL+=("$t")
        continue
    fi
    while ((${#RUNNING[@]} >= JOBS)); do reap_test; done
    start_test "$t"
done
while ((${#RUNNING[@]} > 0)); do reap_test; done
for t in ${SERIAL[@]+"${SERIAL[@]}"}; do
    start_test "$t"
    reap_test
done

((failed == 0)) || echo "failed: ${FAILED_NAMES[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
