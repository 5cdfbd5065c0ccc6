# shellcheck shell=bash
# common.sh - sourced by every tests/integration/*.sh (run by tests/run-integration.sh).
#
# Gives: set -euo pipefail; TEST_TMP (private temp dir, removed at exit);
#   on_exit CMD...         register a cleanup, run at EXIT in reverse order (also on failure,
#                          timeout or Ctrl-C); works from subshells such as $(...) too
#   wait_until SECS CMD... poll CMD until it succeeds; fail the test after SECS seconds
#   fail MSG...            print "FAIL: MSG" and exit 1
#   note MSG...            print "# MSG" (progress lines in the test's log)
#   new_bucket             create a fresh S3 bucket with a unique valid name and print it
#   awss3 ARGS...          /usr/bin/aws --endpoint-url $BFS_S3_ENDPOINT ARGS (quiet transfers)
#   swift_stop_proxy       take the S3 endpoint down (restarted at exit if still down)
#   swift_start_proxy      bring it back and wait until it answers
#   faultproxy_start MODEFILE
#                          start tests/lib/faultproxy.py in front of Swift on a free port,
#                          print its URL; MODEFILE holds the fault mode (see faultproxy.py);
#                          its request log is $MODEFILE.log; stopped at exit
# Environment (from run-integration.sh): BFS_ROOT BFS_BIN BFS_S3_ENDPOINT BFS_SWIFT_DIR
#   LIBSQL_BOTTOMLESS_{ENDPOINT,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_DEFAULT_REGION}
#   AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION.
# BFS_KEEP_TMP=1 keeps TEST_TMP for inspection.

set -euo pipefail

for _v in BFS_ROOT BFS_BIN BFS_S3_ENDPOINT BFS_SWIFT_DIR; do
    if [[ -z ${!_v:-} ]]; then
        echo "FAIL: $_v is not set: run this test through tests/run-integration.sh" \
            "(make integration T=$(basename "$0" .sh))" >&2
        exit 1
    fi
done
unset _v

TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "${BFS_TMP:-${TMPDIR:-/tmp}}/bfs-$TEST_NAME.XXXXXX")
_BFS_ON_EXIT="$TEST_TMP/.on_exit"
: >"$_BFS_ON_EXIT"
export TEST_NAME TEST_TMP
# never let awscli/boto3 look for instance metadata (non-loopback address)
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "# $*" >&2
}

# on_exit CMD...: CMD is stored quoted in a file, so registrations made inside a
# subshell (x=$(faultproxy_start ...)) are seen by the test's EXIT trap.
on_exit() {
    local q
    printf -v q '%q ' "$@"
    echo "$q" >>"$_BFS_ON_EXIT"
}

_bfs_unmount_under() { # lazily unmount anything still mounted below $1
    local mnt
    while read -r _ mnt _; do
        mnt=$(printf '%b' "$mnt") # /proc/mounts escapes spaces as \040
        if [[ $mnt == "$1"/* ]]; then
            fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        fi
    done < <(tac /proc/mounts)
}

_bfs_cleanup() {
    local rc=$? line
    set +e
    trap - EXIT INT TERM HUP
    if [[ -s $_BFS_ON_EXIT ]]; then
        while IFS= read -r line; do
            (eval "$line") </dev/null || echo "# cleanup failed: $line" >&2
        done < <(tac "$_BFS_ON_EXIT")
    fi
    _bfs_unmount_under "$TEST_TMP"
    if [[ ${BFS_KEEP_TMP:-0} == 1 || ! -d $TEST_TMP ]]; then
        [[ -d $TEST_TMP ]] && echo "# kept $TEST_TMP" >&2
    else
        # --one-file-system: never delete through a mount that would not go away
        rm -rf --one-file-system "$TEST_TMP" 2>/dev/null ||
            echo "# could not remove all of $TEST_TMP" >&2
    fi
    exit "$rc"
}
trap _bfs_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# wait_until SECS CMD...: run CMD every 0.1 s (output discarded) until it succeeds.
wait_until() {
    local secs=$1
    shift
    [[ $secs =~ ^[0-9]+$ ]] || fail "wait_until: bad SECS '$secs'"
    local end_ns=$(($(date +%s%N) + secs * 1000000000))
    while ! "$@" >/dev/null 2>&1; do
        if (($(date +%s%N) >= end_ns)); then
            fail "timed out after ${secs}s waiting for: $*"
        fi
        sleep 0.1
    done
}

awss3() {
    local args=("$@")
    # s3 transfer commands print progress bars; keep only errors
    if [[ ${1:-} == s3 ]] && [[ ${2:-} =~ ^(cp|mv|sync|rm)$ ]]; then
        args+=(--only-show-errors)
    fi
    /usr/bin/aws --endpoint-url "$BFS_S3_ENDPOINT" --no-cli-pager "${args[@]}"
}

# new_bucket: prints a fresh bucket name (lowercase, 3-63 chars of [a-z0-9-], starts and
# ends with a letter or digit) after creating it.
new_bucket() {
    local base rnd name
    base=$(printf '%s' "$TEST_NAME" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9' '-' | tr -s '-')
    base=${base#-}
    base=${base:0:40}
    base=${base%-}
    rnd=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
    name="bfs-${base:+$base-}$rnd"
    awss3 s3api create-bucket --bucket "$name" >/dev/null ||
        fail "could not create bucket $name at $BFS_S3_ENDPOINT"
    echo "$name"
}

swift_stop_proxy() {
    on_exit _bfs_proxy_ensure_up
    bash "$BFS_ROOT/tests/lib/swift.sh" stop-proxy "$BFS_SWIFT_DIR"
}

swift_start_proxy() {
    bash "$BFS_ROOT/tests/lib/swift.sh" start-proxy "$BFS_SWIFT_DIR"
}

_bfs_proxy_ensure_up() {
    bash "$BFS_ROOT/tests/lib/swift.sh" status "$BFS_SWIFT_DIR" ||
        bash "$BFS_ROOT/tests/lib/swift.sh" start-proxy "$BFS_SWIFT_DIR"
}

# faultproxy_start MODEFILE: prints http://127.0.0.1:PORT of a new fault proxy.
faultproxy_start() {
    local modefile=$1 portfile pid port i
    [[ -e $modefile ]] || echo ok >"$modefile"
    portfile=$(mktemp "$TEST_TMP/faultproxy.port.XXXXXX")
    rm -f "$portfile"
    /usr/bin/python3 "$BFS_ROOT/tests/lib/faultproxy.py" \
        --upstream "$BFS_S3_ENDPOINT" --mode-file "$modefile" \
        --log "$modefile.log" --port-file "$portfile" \
        </dev/null >>"$modefile.log" 2>&1 &
    pid=$!
    on_exit _bfs_stop_pid "$pid"
    for ((i = 0; i < 100; i++)); do
        if [[ -s $portfile ]]; then
            port=$(cat "$portfile")
            echo "http://127.0.0.1:$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$modefile.log" >&2 || true
    fail "fault proxy did not start"
}

_bfs_stop_pid() { # TERM, then KILL after 5 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        [[ $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
