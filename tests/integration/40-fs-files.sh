#!/usr/bin/env bash
# 40-fs-files: files that are not databases behave through the mount as on the backing
# filesystem: text files, directories, renames (plain, over a file, RENAME_NOREPLACE,
# RENAME_EXCHANGE), hard links, symlinks, fifos, chmod/chown/utimens, ownership and umask of
# entries a non-root user creates, permission refusals, xattrs, truncate, fallocate (incl.
# punch hole), statfs, a large file's sha256 across a remount, the hidden staging directory
# and the read-only status file. Pure passthrough (-o noreplicate); run in default and
# writeback mode.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

PY=/usr/bin/python3

run_mode() {
    local mode=$1
    shift
    # a non-root user must reach the mount: use a world-traversable directory of our own
    # (TEST_TMP may sit under a 0700 directory of the harness)
    local W
    W=$(mktemp -d /tmp/bfs-40-fs-files-$mode.XXXXXX)
    on_exit rm -rf --one-file-system "$W"
    chmod 755 "$W"
    local B=$W/back M=$W/mnt
    mkdir -p "$B" "$M"
    chmod 755 "$B"
    mkdir "$B/.bottomless" && echo secret >"$B/.bottomless/staged"
    echo preexisting >"$B/old.txt"
    mount_fs "$B" "$M" -o noreplicate,allow_other,xattr "$@"
    note "mode $mode: mounted $B on $M (pid $BFS_FS_PID)"

    # --- text files, append, listing ------------------------------------------------------
    [[ $(cat "$M/old.txt") == preexisting ]] || fail "pre-existing file not readable"
    printf 'line1\n' >"$M/a.txt"
    printf 'line2\n' >>"$M/a.txt"
    [[ $(cat "$B/a.txt") == $'line1\nline2' ]] || fail "write/append not in backing file"
    [[ $(cat "$M/a.txt") == $'line1\nline2' ]] || fail "read back through mount differs"
    mkdir -p "$M/d1/d2/d3"
    echo deep >"$M/d1/d2/d3/f"
    [[ -d $B/d1/d2/d3 && $(cat "$B/d1/d2/d3/f") == deep ]] || fail "nested mkdir/file"
    rmdir "$M/d1/d2/d3" 2>/dev/null && fail "rmdir of a non-empty dir succeeded"
    rm "$M/d1/d2/d3/f" && rmdir "$M/d1/d2/d3"
    [[ ! -e $B/d1/d2/d3 ]] || fail "rmdir did not reach backing"
    diff <(ls -A "$B" | grep -vx .bottomless) <(ls -A "$M") || fail "listing differs"
    for i in $(seq 1 300); do : >"$M/d1/many-$i"; done # several readdir pages
    [[ $(ls "$M/d1" | grep -c '^many-') == 300 ]] || fail "readdir lost entries"
    [[ $(find "$M/d1" -name 'many-*' | wc -l) == 300 ]] || fail "readdirplus lost entries"

    # --- hidden staging dir, status file --------------------------------------------------
    ls -A "$M" | grep -qx .bottomless && fail ".bottomless is listed"
    [[ $(ls -A "$M/.bottomless" | tr '\n' ' ') == "stats status " ]] ||
        fail ".bottomless shows backing content"
    $PY -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["requests"] > 0 and s["by_op"]["LOOKUP"] > 0, s' \
        "$M/.bottomless/stats" || fail "stats file: not JSON or no request counted"
    [[ -e $M/.bottomless/staged ]] && fail "staging file reachable through the mount"
    $PY -c 'import json,sys; json.load(open(sys.argv[1]))' "$M/.bottomless/status" ||
        fail "status file is not JSON"
    (echo x >"$M/.bottomless/status") 2>/dev/null && fail "status file is writable"
    (echo x >"$M/.bottomless/new") 2>/dev/null && fail "created a file in .bottomless"
    mkdir "$M/.bottomless/x" 2>/dev/null && fail "mkdir in .bottomless"
    rm -rf "$M/.bottomless" 2>/dev/null || true
    [[ $(cat "$B/.bottomless/staged") == secret ]] || fail "staging area was touched"
    mv "$M/a.txt" "$M/.bottomless" 2>/dev/null && fail "renamed onto .bottomless"

    # --- renames ------------------------------------------------------------------------
    echo one >"$M/r1"
    echo two >"$M/r2"
    mv "$M/r1" "$M/r1b"
    [[ ! -e $B/r1 && $(cat "$B/r1b") == one ]] || fail "rename"
    mv "$M/r1b" "$M/d1/r1c"
    [[ $(cat "$B/d1/r1c") == one ]] || fail "rename across directories"
    mv "$M/d1/r1c" "$M/r2"
    [[ $(cat "$M/r2") == one && $(cat "$B/r2") == one ]] || fail "rename over a file"
    echo three >"$M/r3"
    $PY - "$M" <<'PYEOF' || fail "renameat2 flags"
import ctypes, errno, os, sys
m = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, NOREPLACE, EXCHANGE = -100, 1, 2
def r2(a, b, flags):
    rc = libc.renameat2(AT_FDCWD, os.path.join(m, a).encode(), AT_FDCWD,
                        os.path.join(m, b).encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()
assert r2("r2", "r3", NOREPLACE) == errno.EEXIST, "NOREPLACE over existing"
assert open(os.path.join(m, "r3")).read() == "three\n"
assert r2("r2", "r4", NOREPLACE) == 0, "NOREPLACE to a free name"
assert r2("r4", "r3", EXCHANGE) == 0, "EXCHANGE"
assert open(os.path.join(m, "r3")).read() == "one\n"
assert open(os.path.join(m, "r4")).read() == "three\n"
assert r2("r4", "nonexistent", EXCHANGE) == errno.ENOENT
PYEOF
    [[ $(cat "$B/r3") == one && $(cat "$B/r4") == three ]] || fail "EXCHANGE not in backing"
    mkdir "$M/dir-a" && echo x >"$M/dir-a/f" && mv "$M/dir-a" "$M/dir-b"
    [[ $(cat "$M/dir-b/f") == x && ! -e $B/dir-a ]] || fail "directory rename"

    # --- hard links, symlinks, fifo ------------------------------------------------------
    echo linked >"$M/h1"
    ln "$M/h1" "$M/h2"
    [[ $(stat -c %h "$M/h1") == 2 && $(stat -c %h "$B/h1") == 2 ]] || fail "link count"
    [[ $(stat -c %i "$M/h1") == $(stat -c %i "$M/h2") ]] || fail "hard links differ in ino"
    echo more >>"$M/h2"
    [[ $(cat "$M/h1") == $'linked\nmore' ]] || fail "hard link content not shared"
    rm "$M/h1"
    [[ $(stat -c %h "$M/h2") == 1 ]] || fail "link count after unlink"
    ln -s h2 "$M/s1"
    ln -s /nonexistent/target "$M/s2"
    [[ $(readlink "$M/s1") == h2 && $(readlink "$B/s1") == h2 ]] || fail "readlink"
    [[ $(readlink "$M/s2") == /nonexistent/target ]] || fail "dangling symlink"
    [[ $(cat "$M/s1") == $'linked\nmore' ]] || fail "read through symlink"
    [[ -L $M/s1 && $(stat -c %F "$M/s2") == "symbolic link" ]] || fail "symlink type"
    mkfifo "$M/fifo"
    [[ -p $B/fifo ]] || fail "mkfifo"

    # --- chmod, chown, utimens ----------------------------------------------------------
    chmod 640 "$M/r3"
    [[ $(stat -c %a "$B/r3") == 640 && $(stat -c %a "$M/r3") == 640 ]] || fail "chmod"
    chown nobody:nogroup "$M/r3"
    [[ $(stat -c %U:%G "$B/r3") == nobody:nogroup ]] || fail "chown"
    [[ $(stat -c %U:%G "$M/r3") == nobody:nogroup ]] || fail "chown seen through mount"
    touch -d '2001-02-03 04:05:06' "$M/r4"
    [[ $(stat -c %Y "$B/r4") == $(date -d '2001-02-03 04:05:06' +%s) ]] || fail "utimens"
    [[ $(stat -c %Y "$M/r4") == $(stat -c %Y "$B/r4") ]] || fail "mtime through mount"
    $PY -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.utime(fd, (1000000000, 1000000000)); os.fchmod(fd, 0o604); os.close(fd)' "$M/r4"
    [[ $(stat -c %Y:%a "$B/r4") == 1000000000:604 ]] || fail "futimens/fchmod via handle"

    # --- a non-root user: ownership, umask, refusals -------------------------------------
    mkdir "$M/pub" && chmod 1777 "$M/pub"
    runuser -u nobody -- sh -c "umask 027; echo hi > '$M/pub/nf'; mkdir '$M/pub/nd'; \
        ln -s nf '$M/pub/nl'; mkfifo '$M/pub/np'" || fail "nobody could not create files"
    [[ $(stat -c %U:%G:%a "$B/pub/nf") == nobody:nogroup:640 ]] ||
        fail "file of nobody: $(stat -c %U:%G:%a "$B/pub/nf")"
    [[ $(stat -c %U:%G:%a "$B/pub/nd") == nobody:nogroup:750 ]] ||
        fail "dir of nobody: $(stat -c %U:%G:%a "$B/pub/nd")"
    [[ $(stat -c %U:%G "$B/pub/nl") == nobody:nogroup ]] || fail "symlink owner"
    [[ $(stat -c %U:%G:%a "$B/pub/np") == nobody:nogroup:640 ]] || fail "fifo owner/mode"
    runuser -u nobody -- sh -c "echo x > '$M/denied'" 2>/dev/null && fail "nobody wrote in /"
    [[ ! -e $B/denied ]] || fail "denied file exists"
    runuser -u nobody -- cat "$M/r3" >/dev/null 2>&1 || fail "owner could not read 640 file"
    chown root:root "$M/r3"
    runuser -u nobody -- cat "$M/r3" >/dev/null 2>&1 && fail "nobody read a root 640 file"
    runuser -u nobody -- sh -c "rm -f '$M/pub/nf'" || fail "owner could not delete in sticky dir"
    echo rootfile >"$M/pub/rf"
    runuser -u nobody -- sh -c "rm -f '$M/pub/rf'" 2>/dev/null && fail "sticky bit ignored"
    [[ -e $B/pub/rf ]] || fail "sticky-protected file removed"
    mkdir "$M/sg" && chgrp nogroup "$M/sg" && chmod 2777 "$M/sg"
    runuser -u nobody -g nogroup -- sh -c "echo g > '$M/sg/f'"
    [[ $(stat -c %G "$B/sg/f") == nogroup ]] || fail "setgid directory group"

    # --- xattrs ---------------------------------------------------------------------------
    $PY - "$M/r4" "$B/r4" <<'PYEOF' || fail "xattrs"
import os, sys, errno
m, b = sys.argv[1], sys.argv[2]
os.setxattr(m, "user.color", b"blue")
assert os.getxattr(b, "user.color") == b"blue"
assert os.getxattr(m, "user.color") == b"blue"
assert "user.color" in os.listxattr(m)
try:
    os.setxattr(m, "user.color", b"red", os.XATTR_CREATE); raise SystemExit("XATTR_CREATE")
except OSError as e:
    assert e.errno == errno.EEXIST
os.removexattr(m, "user.color")
assert "user.color" not in os.listxattr(b)
try:
    os.getxattr(m, "user.color"); raise SystemExit("removed xattr still there")
except OSError as e:
    assert e.errno == errno.ENODATA
PYEOF

    # --- truncate, fallocate, statfs ----------------------------------------------------
    printf '0123456789' >"$M/t"
    truncate -s 4 "$M/t"
    [[ $(cat "$B/t") == 0123 && $(stat -c %s "$M/t") == 4 ]] || fail "truncate shrink"
    truncate -s 100000 "$M/t"
    [[ $(stat -c %s "$B/t") == 100000 && $(stat -c %s "$M/t") == 100000 ]] || fail "truncate grow"
    $PY -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); os.ftruncate(fd, 7); os.close(fd)' "$M/t"
    [[ $(stat -c %s "$B/t") == 7 ]] || fail "ftruncate"
    printf 'abc' >"$M/t" # O_TRUNC
    [[ $(cat "$B/t") == abc ]] || fail "O_TRUNC"
    fallocate -l 1048576 "$M/fa"
    [[ $(stat -c %s "$B/fa") == 1048576 ]] || fail "fallocate size"
    head -c 65536 /dev/urandom >"$M/ph"
    fallocate -p -o 4096 -l 8192 "$M/ph"
    [[ $(stat -c %s "$M/ph") == 65536 ]] || fail "punch hole changed the size"
    [[ $(dd if="$M/ph" bs=4096 skip=1 count=2 2>/dev/null | tr -d '\0' | wc -c) == 0 ]] ||
        fail "punched range is not zero through the mount"
    [[ $(dd if="$B/ph" bs=4096 skip=1 count=2 2>/dev/null | tr -d '\0' | wc -c) == 0 ]] ||
        fail "punched range is not zero in backing"
    [[ $(stat -f -c '%b %S %c' "$M") == $(stat -f -c '%b %S %c' "$B") ]] || fail "statfs"

    # --- O_DIRECT opens work (the kernel bypasses its cache; the daemon does buffered I/O)
    dd if=/dev/urandom of="$TEST_TMP/dio" bs=4096 count=64 status=none
    dd if="$TEST_TMP/dio" of="$M/dio" bs=4096 oflag=direct status=none || fail "O_DIRECT write"
    cmp "$TEST_TMP/dio" <(dd if="$M/dio" bs=4096 iflag=direct status=none) || fail "O_DIRECT read"
    cmp "$TEST_TMP/dio" "$B/dio" || fail "O_DIRECT data in backing"

    # --- large file round trip across a remount -----------------------------------------
    head -c $((48 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/big"
    want=$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)
    cp "$TEST_TMP/big" "$M/big"
    [[ $(sha256sum <"$M/big" | cut -d' ' -f1) == "$want" ]] || fail "big file via mount"
    [[ $(sha256sum <"$B/big" | cut -d' ' -f1) == "$want" ]] || fail "big file in backing"
    $PY - "$M/big" "$TEST_TMP/big" <<'PYEOF' || fail "random-offset writes"
import os, random, sys
m, ref = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
fm, fr = os.open(m, os.O_RDWR), os.open(ref, os.O_RDWR)
for _ in range(500):
    off = rnd.randrange(0, 48 * 1024 * 1024 + 8192)
    data = os.urandom(rnd.randrange(1, 20000))
    os.pwrite(fm, data, off); os.pwrite(fr, data, off)
os.fsync(fm); os.fdatasync(fm); os.close(fm); os.close(fr)
PYEOF
    want=$(sha256sum <"$TEST_TMP/big" | cut -d' ' -f1)
    unmount_fs "$M"
    [[ $(sha256sum <"$B/big" | cut -d' ' -f1) == "$want" ]] || fail "big file after unmount"
    mount_fs "$B" "$M" -o noreplicate,allow_other,xattr "$@"
    [[ $(sha256sum <"$M/big" | cut -d' ' -f1) == "$want" ]] || fail "big file after remount"
    [[ $(cat "$M/r3") == one && $(readlink "$M/s1") == h2 ]] || fail "state after remount"
    unmount_fs "$M"
    rm -f "$TEST_TMP/big"
}

run_mode default
run_mode writeback -o writeback=50
echo "ok"
