#!/usr/bin/env bash
# 86-idle-memory: databases that were written and then closed hold no staging buffers. One
# database is written (2,000 single-row transactions, so the stager copies frames) and
# closed, and the daemon's RSS is read once everything is uploaded; then 20 more the same way.
# The 20 may add well under 12 MiB: the stager's 1 MiB copy buffer is kept only while a
# database has frames to stage (regression: kept for the database's lifetime, +22-24 MiB here).
# timeout: 300
# serial: it measures the daemon's RSS
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

# ASan keeps freed blocks in quarantine (RSS would not show them freed)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
{
    echo "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
    for ((i = 0; i < 2000; i++)); do echo "INSERT INTO t(v) VALUES (hex(randomblob(200)));"; done
} >"$TEST_TMP/fill.sql"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$BFS_FS_PID/status"; }
fill() { # N...: write and close each database
    local n
    for n in "$@"; do
        sqlite3 "$M/d$n.db" <"$TEST_TMP/fill.sql" >/dev/null || fail "sqlite3 failed on d$n.db"
    done
}

mount_fs "$B" "$M"
fill 0
repl_wait_synced 60 "$M"
one=$(rss_kib)
fill $(seq 1 20)
repl_wait_synced 120 "$M"
twenty_one=$(rss_kib)
note "daemon RSS: ${one} KiB with 1 idle database, ${twenty_one} KiB with 21"
for n in $(seq 0 20); do
    [[ $(sqlite3 "$M/d$n.db" "SELECT count(*) FROM t") == 2000 ]] || fail "d$n.db lost rows"
done
unmount_fs "$M"
((twenty_one - one < 12 * 1024)) ||
    fail "20 idle databases added $(((twenty_one - one) / 1024)) MiB of RSS (limit 12)"
