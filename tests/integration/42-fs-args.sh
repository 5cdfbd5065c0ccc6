#!/usr/bin/env bash
# 42-fs-args: the daemon's command line: --help documents every option, --version, bad
# arguments / unknown or invalid options / a missing BACKING_DIR or MOUNTPOINT / a
# mountpoint that is or nests with BACKING_DIR fail with a clear message and a non-zero
# status and leave nothing mounted; options come from the environment too (-o wins: checked
# through the validation message); daemon mode (no -f) returns only once mounted (also with its
# output captured by $(...): no process of it keeps the pipe) and exits
# after fusermount3 -u; SIGTERM and SIGINT in the foreground unmount cleanly; the fstab forms
# (mount -t fuse "PROG#BACKING", mount.fuse3 -t).
# timeout: 200
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

BIN=$BFS_BIN/bottomlessfs
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
echo hello >"$B/file"

expect_fail() { # MSG-REGEX ARGS...: must exit non-zero, print MSG-REGEX, mount nothing
    local re=$1 rc=0
    shift
    timeout 30 "$BIN" "$@" >"$TEST_TMP/out" 2>&1 </dev/null || rc=$? # 124: it hung
    ((rc != 0)) || fail "exit 0 for: $* ($(cat "$TEST_TMP/out"))"
    grep -qE "$re" "$TEST_TMP/out" || fail "message for '$*' lacks /$re/: $(cat "$TEST_TMP/out")"
    ! fs_is_mounted "$M" || fail "left a mount behind: $*"
}

pid_gone() { # exited (a zombie child counts as gone)
    ! kill -0 "$1" 2>/dev/null || [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

# --- help and version ---------------------------------------------------------------------
"$BIN" --help >"$TEST_TMP/help" || fail "--help exit status"
for opt in -f -d endpoint bucket region batch_interval batch_max_frames compression durable \
    writeback flush_timeout snapshot_max_gens snapshot_wal_pct snapshot_wal_min list_ttl ca_file \
    insecure_tls generation_per_checkpoint \
    noreplicate noxattr nocpu_latency spin_us allow_other log_level LIBSQL_BOTTOMLESS_ENDPOINT \
    LIBSQL_BOTTOMLESS_BUCKET \
    AWS_REGION LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES \
    LIBSQL_BOTTOMLESS_COMPRESSION fuse.bottomlessfs fusermount3 synchronous=FULL; do
    grep -qF -- "$opt" "$TEST_TMP/help" || fail "--help does not mention $opt"
done
"$BIN" -h | cmp -s - "$TEST_TMP/help" || fail "-h differs from --help"
"$BIN" --version | grep -qE '^bottomlessfs [0-9]' || fail "--version"

# --- usage errors -------------------------------------------------------------------------
expect_fail 'expected BACKING_DIR and MOUNTPOINT'
expect_fail 'expected BACKING_DIR and MOUNTPOINT' "$B"
expect_fail 'expected BACKING_DIR and MOUNTPOINT' "$B" "$M" "$TEST_TMP"
expect_fail 'backing directory .*/nope: no such directory' "$TEST_TMP/nope" "$M"
expect_fail 'backing directory .*: not a directory' "$B/file" "$M"
expect_fail 'mountpoint .*/nomnt: no such directory' "$B" "$TEST_TMP/nomnt"
# a mount over its own backing directory, or nested in it either way, hung the daemon in its
# first mkdir of the staging area (its own call came back to it)
mkdir -p "$TEST_TMP/nest/in"
expect_fail 'mountpoint .* is the backing directory' "$B" "$B"
N=$TEST_TMP/nest
expect_fail 'mountpoint .*/nest/in is inside the backing directory' "$N" "$N/in"
expect_fail 'backing directory .*/nest/in is inside the mountpoint' "$N/in" "$N"
expect_fail 'unknown option' -x "$B" "$M"
expect_fail "unknown option.*bogus" -o noreplicate,bogus=1 "$B" "$M"
expect_fail 'invalid compression=lz4' -o compression=lz4 "$B" "$M"
expect_fail 'invalid batch_interval=abc' -o batch_interval=abc "$B" "$M"
expect_fail 'invalid batch_max_frames=0' -o batch_max_frames=0 "$B" "$M"
expect_fail 'invalid writeback=x' -o writeback=x "$B" "$M"
expect_fail 'invalid spin_us=99999' -o noreplicate,spin_us=99999 "$B" "$M"
expect_fail 'invalid log_level=loud' -o noreplicate,log_level=loud "$B" "$M"
expect_fail 'invalid snapshot_wal_min=lots' -o noreplicate,snapshot_wal_min=lots "$B" "$M"
# environment values are validated the same way, and -o wins over them
LIBSQL_BOTTOMLESS_COMPRESSION=bogus expect_fail 'invalid compression=bogus' -o noreplicate "$B" "$M"
LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES=x expect_fail 'invalid batch_max_frames=x' -o noreplicate "$B" "$M"
LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS=-1 expect_fail 'invalid batch_interval=-1' -o noreplicate "$B" "$M"
LIBSQL_BOTTOMLESS_COMPRESSION=bogus expect_fail 'invalid batch_max_frames=0' \
    -o noreplicate,compression=gzip,batch_max_frames=0 "$B" "$M"
[[ ! -e $B/.bottomless ]] || fail "noreplicate created a staging directory"

# --- foreground: SIGTERM and SIGINT unmount cleanly ---------------------------------------
for sig in TERM INT; do
    spin=0
    [[ $sig == INT ]] && spin=200 # the spinning loop must notice signals too
    mount_fs "$B" "$M" -o noreplicate,spin_us=$spin
    [[ $(cat "$M/file") == hello ]] || fail "read through mount"
    kill -"$sig" "$BFS_FS_PID"
    wait_until 20 pid_gone "$BFS_FS_PID"
    rc=0
    wait "$BFS_FS_PID" || rc=$?
    ((rc == 0)) || fail "SIG$sig: daemon exited $rc"
    ! fs_is_mounted "$M" || fail "SIG$sig left the mount"
    fs_check_log "$BFS_FS_LOG"
done

# --- -o noxattr: xattr calls are refused, everything else works ------------------------------
mount_fs "$B" "$M" -o noreplicate,noxattr
/usr/bin/python3 - "$M" <<'PYEOF' || fail "noxattr"
import errno, os, sys
m = sys.argv[1]
with open(os.path.join(m, "nx"), "w") as f:
    f.write("data")
for call in (lambda: os.setxattr(os.path.join(m, "nx"), "user.a", b"1"),
             lambda: os.getxattr(os.path.join(m, "nx"), "user.a"),
             lambda: os.listxattr(os.path.join(m, "nx"))):
    try:
        call(); raise SystemExit("xattr call succeeded with noxattr")
    except OSError as e:
        assert e.errno == errno.EOPNOTSUPP, e
assert open(os.path.join(m, "nx")).read() == "data"
PYEOF
unmount_fs "$M"
rm -f "$B/nx"

# --- daemon mode: returns once mounted, exits after fusermount3 -u --------------------------
daemon_pid() { pgrep -f -x "$1" | head -1; }
stop_daemon() { # MNT CMDLINE
    fs_is_mounted "$1" && { fusermount3 -u "$1" || fusermount3 -u -z "$1"; }
    local pid
    pid=$(daemon_pid "$2") || true
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
    return 0
}
on_exit stop_daemon "$M" "$BIN -o noreplicate $B $M"
# its output captured (out=$(...), | tee): the command returns, its processes hold no pipe
# (the mount helper child kept the caller's stdout and stderr, so this hung until the unmount)
out=$(timeout 30 "$BIN" -o noreplicate "$B" "$M" 2>&1) || fail "daemon mode exit status ($?): $out"
fs_is_mounted "$M" || fail "daemon mode returned before the mount existed"
[[ $(cat "$M/file") == hello ]] || fail "read through daemon-mode mount"
pid=$(daemon_pid "$BIN -o noreplicate $B $M")
[[ -n $pid ]] || fail "no daemon process"
[[ $(ps -o tty= -p "$pid" | tr -d ' ') == "?" ]] || fail "daemon still has a terminal"
fusermount3 -u "$M"
wait_until 20 pid_gone "$pid"
! fs_is_mounted "$M" || fail "still mounted"

# --- fstab forms ----------------------------------------------------------------------------
on_exit stop_daemon "$M" "$BIN $B $M -o rw,noreplicate,dev,suid"
mount -t fuse "$BIN#$B" "$M" -o noreplicate || fail "mount -t fuse PROG#BACKING"
[[ $(awk -v m="$M" '$2 == m { print $3 }' /proc/mounts) == fuse.bottomlessfs ]] ||
    fail "mount type is not fuse.bottomlessfs"
[[ $(cat "$M/file") == hello ]] || fail "read through fstab-style mount"
fusermount3 -u "$M"
wait_until 20 bash -c "! grep -q ' $M ' /proc/mounts"
PATH=$BFS_BIN:$PATH mount.fuse3 "$B" "$M" -t bottomlessfs -o noreplicate ||
    fail "mount.fuse3 -t bottomlessfs"
[[ $(cat "$M/file") == hello ]] || fail "read through mount.fuse3 mount"
fusermount3 -u "$M"
rc=0
PATH=$BFS_BIN:$PATH mount.fuse3 "$B" "$M" -t bottomlessfs -o noreplicate,compression=lz4 \
    >"$TEST_TMP/out" 2>&1 || rc=$?
((rc != 0)) && grep -q 'invalid compression=lz4' "$TEST_TMP/out" ||
    fail "fstab mount with a bad option: rc=$rc $(cat "$TEST_TMP/out")"
! fs_is_mounted "$M" || fail "bad fstab options left a mount"
echo "ok"
