#!/usr/bin/env bash
# 77-rel-security: no credentials or signatures in trace/debug logs (daemon with
# BOTTOMLESS_LOG=trace and -d, CLI with --log-level debug): the secret key, "Signature=",
# "Authorization" and "X-Amz-Security-Token" never appear; files created through the mount by
# another user keep that user's ownership and modes in BACKING_DIR; the staging area is 0700
# (its files 0600) and hidden from the mount; without allow_other the mount is private to its
# user (another user gets EACCES); with allow_other, default_permissions enforces modes.
# Needs root (runs the "other user" as nobody via setpriv); skipped otherwise.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

if (($(id -u) != 0)); then
    note "not root: skipped (needs another user)"
    exit 0
fi
SECRET=${LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY:?}
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
repl_bucket
# a world-traversable place for the mounts (TEST_TMP may sit under a 0700 harness directory)
PUB=$(mktemp -d /tmp/bfs-77-rel-security.XXXXXX)
on_exit rm -rf --one-file-system "$PUB"
chmod 755 "$PUB"
B=$PUB/back M=$PUB/mnt
mkdir -p "$B" "$M"

check_secrets() { # LOGFILE...
    local f
    for f in "$@"; do
        if grep -nF -- "$SECRET" "$f" | head -3 | grep -q .; then fail "secret key in $f"; fi
        if grep -nE 'Signature=|Authorization|X-Amz-Security-Token' "$f" | head -3 | grep -q .; then
            grep -nE 'Signature=|Authorization|X-Amz-Security-Token' "$f" | head -3 >&2
            fail "signature material in $f"
        fi
    done
}

# --- private mount (no allow_other), trace logging --------------------------------------------
BOTTOMLESS_LOG=trace mount_fs "$B" "$M" -o batch_interval=1
LOG1=$BFS_FS_LOG
sqlite3 "$M/app.db" "pragma journal_mode=wal; create table t(x); insert into t values (1);" >/dev/null
repl_wait_synced 60 "$M" app.db
as_nobody ls "$M" >/dev/null 2>&1 && fail "another user can list a mount without allow_other"
as_nobody stat "$M/app.db" >/dev/null 2>&1 && fail "another user can stat inside a private mount"
[[ $(stat -c %a "$B/.bottomless") == 700 ]] || fail "staging dir mode $(stat -c %a "$B/.bottomless")"
bad=$(find "$B/.bottomless" \( -type d ! -perm 700 \) -o \( -type f -perm /077 \) | head -3)
[[ -z $bad ]] || fail "staging entries open to others: $bad"
extra=$(ls -A "$M/.bottomless" 2>/dev/null | grep -vxE "status|stats" || true) # virtual files only
[[ -z $extra ]] || fail "the staging area is visible through the mount: $extra"
unmount_fs "$M"

# --- allow_other: default_permissions enforces modes; ownership kept --------------------------
mount_fs "$B" "$M" -o batch_interval=1,allow_other -d
LOG2=$BFS_FS_LOG
mkdir "$M/shared"
chmod 1777 "$M/shared"
as_nobody sh -c "umask 027; echo hi > '$M/shared/n.txt'; mkdir '$M/shared/nd'" || fail "nobody cannot write a 1777 dir"
[[ $(stat -c '%u:%g %a' "$B/shared/n.txt") == "65534:65534 640" ]] ||
    fail "backing file owner/mode: $(stat -c '%u:%g %a' "$B/shared/n.txt") (want 65534:65534 640)"
[[ $(stat -c '%u:%g %a' "$B/shared/nd") == "65534:65534 750" ]] ||
    fail "backing dir owner/mode: $(stat -c '%u:%g %a' "$B/shared/nd")"
as_nobody sqlite3 "$M/shared/u.db" "pragma journal_mode=wal; create table t(x); insert into t values (7);" >/dev/null ||
    fail "nobody cannot create a database"
[[ $(stat -c %u "$B/shared/u.db") == 65534 && $(stat -c %u "$B/shared/u.db-wal" 2>/dev/null || echo 65534) == 65534 ]] ||
    fail "database not owned by its creator"
echo secret >"$M/root-only.txt"
chmod 600 "$M/root-only.txt"
as_nobody cat "$M/root-only.txt" >/dev/null 2>&1 && fail "default_permissions not enforced (0600 root file readable)"
as_nobody cat "$M/shared/n.txt" >/dev/null || fail "nobody cannot read its own file"
as_nobody sh -c "echo x >> '$M/app.db'" 2>/dev/null && fail "nobody could write root's database"
repl_wait_synced 60 "$M" app.db shared/u.db
unmount_fs "$M"

# --- the CLI at debug level ---------------------------------------------------------------------
cli --log-level debug -d app.db restore -o "$TEST_TMP/r.db" >"$TEST_TMP/cli.log" 2>&1 || { cat "$TEST_TMP/cli.log" >&2; fail "cli restore"; }
cli --log-level debug ls >>"$TEST_TMP/cli.log" 2>&1 || fail "cli ls"
grep -qE 'debug|GET|LIST' "$TEST_TMP/cli.log" || note "(the CLI printed no debug lines)"
check_secrets "$LOG1" "$LOG2" "$TEST_TMP/cli.log"
note "logs: $(wc -l <"$LOG1") trace lines, $(wc -l <"$LOG2") -d lines, $(wc -l <"$TEST_TMP/cli.log") cli lines; no secrets"
