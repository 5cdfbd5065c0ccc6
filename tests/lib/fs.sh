# fs.sh - mount helpers for integration tests that need a bottomlessfs mount.
# Source after common.sh:   source "$BFS_ROOT/tests/lib/fs.sh"
#
#   mount_fs BACKING MNT [ARGS...]
#       starts "$BFS_BIN/bottomlessfs -f ARGS BACKING MNT" in the background (log in
#       $TEST_TMP/bottomlessfs.N.log), waits until MNT is a fuse.bottomlessfs mount (fails the
#       test if the daemon dies or 20 s pass), and registers a cleanup that unmounts with
#       fusermount3 -u (falling back to -u -z) and stops the daemon. Sets BFS_FS_PID and
#       BFS_FS_LOG for the last mount. Pass -o noreplicate for a pure passthrough.
#   unmount_fs MNT
#       fusermount3 -u MNT, waits for the daemon to exit and fails the test if it exited
#       non-zero or its log shows a sanitizer report.
#   fs_reap MNT              the same after something else unmounted MNT (bottomlessfs -u)
#   fs_is_mounted MNT        true when MNT is a bottomlessfs mount
#   fs_check_log LOG         fails the test when LOG holds an ASan/UBSan report

declare -A _BFS_FS_PIDS=()
declare -A _BFS_FS_LOGS=()
_BFS_FS_N=0

fs_is_mounted() {
    local mnt
    mnt=$(realpath -m "$1")
    awk -v m="$mnt" '$2 == m && $3 ~ /^fuse(\.[^ ]+)?$/ { found = 1 } END { exit !found }' \
        /proc/mounts
}

fs_check_log() {
    local log=$1
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" 2>/dev/null; then
        sed -n '1,80p' "$log" >&2
        fail "sanitizer report in $log"
    fi
}

_bfs_fs_cleanup() { # MNT PID
    local mnt=$1 pid=$2 i
    if fs_is_mounted "$mnt"; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || true
    fi
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

mount_fs() {
    local backing=$1 mnt=$2
    shift 2
    local log pid end_ns
    _BFS_FS_N=$((_BFS_FS_N + 1))
    log="$TEST_TMP/bottomlessfs.$_BFS_FS_N.log"
    mkdir -p "$mnt"
    # background jobs of a script start with SIGINT ignored; give the daemon the default back
    env --default-signal=INT "$BFS_BIN/bottomlessfs" -f "$@" "$backing" "$mnt" \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    on_exit _bfs_fs_cleanup "$mnt" "$pid"
    end_ns=$(($(date +%s%N) + 20 * 1000000000))
    while ! fs_is_mounted "$mnt"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            fail "bottomlessfs exited before mounting $mnt"
        fi
        if (($(date +%s%N) >= end_ns)); then
            cat "$log" >&2
            fail "bottomlessfs did not mount $mnt within 20 s"
        fi
        sleep 0.05
    done
    _BFS_FS_PIDS[$mnt]=$pid
    _BFS_FS_LOGS[$mnt]=$log
    BFS_FS_PID=$pid
    BFS_FS_LOG=$log
    export BFS_FS_PID BFS_FS_LOG
}

unmount_fs() {
    [[ -n ${_BFS_FS_PIDS[$1]:-} ]] || fail "unmount_fs: $1 was not mounted by mount_fs"
    fusermount3 -u "$1" || fail "fusermount3 -u $1 failed"
    fs_reap "$1"
}

fs_reap() {
    local mnt=$1 pid log rc=0 end_ns
    pid=${_BFS_FS_PIDS[$mnt]:-}
    log=${_BFS_FS_LOGS[$mnt]:-}
    [[ -n $pid ]] || fail "fs_reap: $mnt was not mounted by mount_fs"
    end_ns=$(($(date +%s%N) + 90 * 1000000000))
    while kill -0 "$pid" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
        if (($(date +%s%N) >= end_ns)); then
            fail "bottomlessfs (pid $pid) did not exit after unmount"
        fi
        sleep 0.05
    done
    wait "$pid" || rc=$?
    unset "_BFS_FS_PIDS[$mnt]"
    fs_check_log "$log"
    if ((rc != 0)); then
        cat "$log" >&2
        fail "bottomlessfs exited with status $rc after unmount"
    fi
}
