#!/usr/bin/env bash
# 71-rel-crash-torture: crash loop. An app (71-rel-crash-app.py) writes random transactions of
# random sizes (small and cache-spilling, with checkpoints of every mode) through the mount and
# logs intent/commit of each transaction id to a file OUTSIDE the mount. Each round, at a
# random moment, one of: the daemon is SIGKILLed (then fusermount3 -u -z and a new mount on
# the same backing dir), the app is SIGKILLed, or both. After each round
# (71-rel-crash-check.py defines the checks precisely):
#   - the local database passes integrity_check and holds every transaction the app saw
#     committed, and nothing that was never committed;
#   - a restore from S3 (CLI), taken right away while the lag may be > 0, is a prefix of the
#     committed history: ids exactly 1..k for some k, each one the committed (or, for k =
#     last committed + 1, the intended) version, meta.last = k;
#   - once the status file says lag 0, a restore equals the local database (.sha3sum).
# Rounds: 10 (kinds rotate daemon, app, both, daemon, ...); BFS_TORTURE=1: 50.
# timeout: 3000
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

ROUNDS=${BFS_CRASH_ROUNDS:-$([[ ${BFS_TORTURE:-0} == 1 ]] && echo 50 || echo 10)}
APP=$BFS_ROOT/tests/integration/71-rel-crash-app.py
CHECK=$BFS_ROOT/tests/integration/71-rel-crash-check.py
repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt LOG=$TEST_TMP/txlog
mkdir -p "$B" "$M"
: >"$LOG"
OPTS=(-o batch_interval=1)
mount_fs "$B" "$M" "${OPTS[@]}"

committed_count() { grep -c '^C ' "$LOG" || true; }
more_committed_than() { (($(committed_count) > $1)); }

# restore_check MODE: CLI restore into r.db; MODE=prefix checks it against the history,
# MODE=exact compares it with the local database.
restore_check() {
    local out=$TEST_TMP/r.db
    rm -f "$out" "$out-wal" "$out-shm"
    if ! cli -d app.db restore -o "$out" --force >"$TEST_TMP/restore.out" 2>&1; then
        if [[ $1 == prefix ]] && grep -qiE 'no generation|not found|no such' "$TEST_TMP/restore.out"; then
            echo "(empty)" >"$TEST_TMP/chk"
            return 0
        fi
        cat "$TEST_TMP/restore.out" >&2
        fail "round $r: restore failed"
    fi
    case $1 in
    prefix) "$PY" "$CHECK" restore "$out" "$LOG" >"$TEST_TMP/chk" || fail "round $r: restore is not a prefix" ;;
    exact)
        local a b
        a=$(sha3 "$out") b=$(sha3 "$M/app.db")
        [[ $a == "$b" ]] || fail "round $r: restore after lag 0 differs from the local database"
        ;;
    esac
}

app_pid=
for ((r = 1; r <= ROUNDS; r++)); do
    kinds=(daemon app both)
    kind=${kinds[$(((r - 1) % 3))]}
    before=$(committed_count)
    "$PY" "$APP" "$M/app.db" "$LOG" "$r" "$((RANDOM * 32768 + RANDOM))" 2>>"$TEST_TMP/app.err" &
    app_pid=$!
    # let the app commit something in this round, then a random moment (0..2.5 s)
    wait_until 60 more_committed_than "$before"
    sleep "$(awk -v s=$RANDOM 'BEGIN { printf "%.2f", (s % 2500) / 1000 }')"
    case $kind in
    daemon) kill -KILL "$BFS_FS_PID" ;;
    app) kill -KILL "$app_pid" ;;
    both)
        kill -KILL "$app_pid"
        kill -KILL "$BFS_FS_PID"
        ;;
    esac
    if [[ $kind != app ]]; then
        # the app gets ENOTCONN / EIO on its next call; stop it if it is stuck in the kernel
        kill -KILL "$app_pid" 2>/dev/null || true
        wait "$app_pid" 2>/dev/null || true
        wait "$BFS_FS_PID" 2>/dev/null || true
        fusermount3 -u -z "$M" 2>/dev/null || true
        wait_until 20 bash -c "! awk '\$2 == \"$(realpath -m "$M")\"' /proc/mounts | grep -q ."
        fs_check_log "$BFS_FS_LOG"
        mount_fs "$B" "$M" "${OPTS[@]}"
    else
        wait "$app_pid" 2>/dev/null || true
    fi
    "$PY" "$CHECK" local "$M/app.db" "$LOG" >"$TEST_TMP/chk" || fail "round $r ($kind): local check"
    note "round $r ($kind): local $(cat "$TEST_TMP/chk")"
    rm -f "$TEST_TMP/chk"
    restore_check prefix
    note "round $r: restore before catch-up $(cat "$TEST_TMP/chk" 2>/dev/null || echo '(empty)')"
    repl_wait_synced 180 "$M" app.db
    restore_check exact
done
unmount_fs "$M"
note "$ROUNDS rounds, $(committed_count) committed transactions"
