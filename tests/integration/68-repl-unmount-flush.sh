#!/usr/bin/env bash
# 68-repl-unmount-flush: a new WAL database written through the mount (a few transactions and
# TRUNCATE checkpoints, so several generations) and the mount unmounted right after the app
# closes: the clean unmount must leave nothing staged (no segment, .meta or .dep files under
# BACKING/.bottomless), every generation in the bucket has its .meta and the batches staged
# for it, and the restore equals the source. Regression: the first generation's batch and
# .meta stayed staged through the unmount (uploaded only at the next mount). A case mounts
# with -o compression=none, which the mount refused until 2026-11-26. The last unmounts with
# bottomlessfs -u, which returns only when the daemon has uploaded everything.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"

cat >"$TEST_TMP/app.py" <<'PYEOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("create table orders(id integer primary key, item text)")
for gen in range(int(sys.argv[2])):
    for i in range(20):
        c.execute("insert into orders(item) values (?)", ("item-%d-%d" % (gen, i),))
    time.sleep(float(sys.argv[3]))
    r = c.execute("pragma wal_checkpoint(truncate)").fetchone()
    assert r[0] == 0, r
    time.sleep(float(sys.argv[3]))
c.execute("insert into orders(item) values ('last')")
print(c.execute("select count(*) from orders").fetchone()[0])
c.close()
PYEOF

run_case() { # NAME ROUNDS PAUSE [COMPRESSION]
    local name=$1 rounds=$2 pause=$3 comp=${4:-}
    mount_fs "$B" "$M" ${comp:+-o compression=$comp}
    local log=$BFS_FS_LOG
    "$PY" "$TEST_TMP/app.py" "$M/$name" "$rounds" "$pause" >"$TEST_TMP/$name.count" ||
        fail "app failed ($name)"
    unmount_fs "$M" # at once: no wait for the batch interval
    grep -q 'replica: flushed, everything committed is in S3' "$log" ||
        { cat "$log" >&2; fail "unmount did not report a complete flush ($name)"; }

    # nothing of any generation is left in staging
    local left
    left=$(find "$B/.bottomless" -type f \( -name '*.seg' -o -name '.meta' -o -name '.dep' \
        -o -name 'db.*' -o -name '*.tmp' -o -name tombstone \) -print)
    if [[ -n $left ]]; then
        cat "$log" >&2
        printf 'left in staging:\n%s\n' "$left" >&2
        awss3 s3 ls --recursive "s3://$BUCKET/" >&2 || true
        fail "clean unmount left staged objects ($name)"
    fi

    # every generation in the bucket has its .meta and at least one batch or a snapshot;
    # the oldest one (the new database's first) has a snapshot, a .meta and its batches
    local keys
    keys=$(awss3 s3 ls --recursive "s3://$BUCKET/" | awk '{print $4}' | grep "^$name-")
    mapfile -t G < <(gens "$name")
    ((${#G[@]} >= 1)) || fail "no generation in the bucket ($name)"
    local g
    for g in "${G[@]}"; do
        grep -qx "$name-$g/.meta" <<<"$keys" || { echo "$keys" >&2; fail "$g has no .meta ($name)"; }
        grep -qE "^$name-$g/([0-9]{12}-[0-9]{12}-[0-9]+\.[a-z]+|db\.[a-z]+)$" <<<"$keys" ||
            { echo "$keys" >&2; fail "$g has neither batch nor snapshot ($name)"; }
    done
    if [[ $comp == none ]]; then # uncompressed objects are named .raw, as bottomless does
        grep -qE '(\.raw)$' <<<"$keys" || { echo "$keys" >&2; fail "no .raw object ($name)"; }
        ! grep -qE '\.(zstd|gz)$' <<<"$keys" || { echo "$keys" >&2; fail "compressed object ($name)"; }
    fi

    # restore equals the source (the backing file, checkpointed by the close)
    local want got
    want=$(sha3 "$B/$name")
    rm -f "$TEST_TMP/r.db"
    cli -d "$name" restore -o "$TEST_TMP/r.db" >/dev/null || fail "restore failed ($name)"
    got=$(sha3 "$TEST_TMP/r.db")
    [[ $got == "$want" ]] || fail "restore differs from the source ($name)"
    [[ $(sqlite3 "$TEST_TMP/r.db" "select count(*) from orders") == "$(cat "$TEST_TMP/$name.count")" ]] ||
        fail "restore has the wrong row count ($name)"
    note "$name: ${#G[@]} generations, staging empty, restore exact"
}

run_case shop.db 3 1      # the reproducer's shape: checkpoints a second apart
run_case quick.db 2 0     # no pauses: everything within the first batch interval
run_case one.db 0 0       # a single generation, unmounted at once
run_case raw.db 2 0 none  # -o compression=none (was refused at mount: "use zstd, gzip or none")

# bottomlessfs -u returns only after the final upload: a restore right after it is exact
# (after fusermount3 -u alone the daemon may still be uploading); with -o subtype=NAME too
# (the mount's type is then fuse.NAME: -u refused it as "not bottomlessfs")
mount_fs "$B" "$M" -o batch_interval=30,subtype=mydb
pid=$BFS_FS_PID
"$PY" "$TEST_TMP/app.py" "$M/late.db" 1 0 >"$TEST_TMP/late.count" || fail "app failed (late.db)"
"$BFS_BIN/bottomlessfs" -u "$M" >"$TEST_TMP/u.out" || fail "bottomlessfs -u failed"
grep -q "unmounted; everything committed is in S3" "$TEST_TMP/u.out" ||
    fail "bottomlessfs -u said: $(cat "$TEST_TMP/u.out")"
# The daemon writes its final state and lets go of the staging lock as its last step; what is
# left is its exit (an ASan build's leak check: a second or more on a loaded machine).
daemon_ended() {
    [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo gone) =~ ^(Z|gone)$ ]]
}
wait_until 20 daemon_ended
cli -d late.db restore -o "$TEST_TMP/late.db" >/dev/null || fail "late.db not in the bucket"
[[ $(sha3 "$TEST_TMP/late.db") == $(sha3 "$B/late.db") ]] || fail "late.db restore differs"
fs_reap "$M"
# not a mount, and a plain directory: clear errors, exit 1
! "$BFS_BIN/bottomlessfs" -u "$M" 2>"$TEST_TMP/u.err" || fail "bottomlessfs -u of no mount succeeded"
grep -q "nothing is mounted at" "$TEST_TMP/u.err" || fail "unclear error: $(cat "$TEST_TMP/u.err")"
! "$BFS_BIN/bottomlessfs" -u /proc 2>"$TEST_TMP/u.err" || fail "bottomlessfs -u /proc succeeded"
grep -q "not bottomlessfs" "$TEST_TMP/u.err" || fail "unclear error: $(cat "$TEST_TMP/u.err")"
