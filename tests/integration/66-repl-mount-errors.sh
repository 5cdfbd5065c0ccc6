#!/usr/bin/env bash
# 66-repl-mount-errors: the daemon checks the bucket before mounting and fails fast, with the
# cause and the fix in its message and nothing mounted, for wrong credentials, a missing
# bucket and an unreachable endpoint (foreground and daemonised). A good configuration mounts.
# timeout: 180
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"

# A port on loopback where nothing listens.
dead_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# expect_fail NAME PATTERN [ENV=VAL...] -- [DAEMON ARGS...]
expect_fail() {
    local name=$1 pattern=$2
    shift 2
    local envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    local log=$TEST_TMP/$name.log rc=0 t0 t1
    for fg in -f ""; do
        t0=$(date +%s%N)
        env "${envs[@]}" timeout 60 "$BFS_BIN/bottomlessfs" $fg "$@" "$B" "$M" \
            </dev/null >"$log" 2>&1 || rc=$?
        t1=$(date +%s%N)
        ((rc != 0)) || fail "$name ($fg): daemon exited 0"
        ((rc != 124)) || fail "$name ($fg): daemon hung (killed by timeout)"
        fs_is_mounted "$M" && fail "$name ($fg): left a mount behind"
        grep -qiE "$pattern" "$log" || { cat "$log" >&2; fail "$name ($fg): message lacks /$pattern/"; }
        grep -q "fix:" "$log" || { cat "$log" >&2; fail "$name ($fg): message gives no fix"; }
        grep -q testing "$log" && fail "$name ($fg): the secret key appears in the output"
        fs_check_log "$log"
        (((t1 - t0) / 1000000 < 30000)) || fail "$name ($fg): took $(((t1 - t0) / 1000000)) ms"
        note "$name ($fg): exit $rc in $(((t1 - t0) / 1000000)) ms: $(head -c 300 "$log")"
        rc=0
    done
}

expect_fail wrong-key "refused the credentials|403|access denied" \
    LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=not-the-key AWS_SECRET_ACCESS_KEY=not-the-key --
expect_fail wrong-user "refused the credentials|403|access denied" \
    LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=nobody:none AWS_ACCESS_KEY_ID=nobody:none --
expect_fail missing-bucket "does not exist" -- -o bucket=bfs-no-such-bucket-$RANDOM$RANDOM
expect_fail unreachable "cannot reach" -- -o endpoint=http://127.0.0.1:$dead_port

# the good configuration mounts, serves, and unmounts cleanly
mount_fs "$B" "$M"
echo hello >"$M/file.txt"
[[ $(cat "$B/file.txt") == hello ]] || fail "mount with a good configuration does not work"
grep -q '"bucket":"'"$BUCKET"'"' "$M/.bottomless/status" || fail "status does not name the bucket"
unmount_fs "$M"
note ok
