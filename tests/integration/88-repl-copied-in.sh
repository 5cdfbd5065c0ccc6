#!/usr/bin/env bash
# 88-repl-copied-in: a database that reaches the mount without a commit through it is backed up
# without one: copied in with cp (once it stops changing), left in BACKING_DIR before the first
# mount, copied in by a writer that pauses midway (the snapshot of the torn half is replaced by
# one of the whole file), copied over a database restored from the bucket or over one the mount
# replicates (with and without a commit right after), and copied in right before an unmount
# (the flush snapshots it). Each is restored from the bucket and compared by
# .sha3sum and integrity_check. A rollback-journal database copied in stays out of the bucket.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt S=$TEST_TMP/src
mkdir -p "$B" "$M" "$S"

mksrc() { # PATH ROWS [JOURNAL_MODE]
    rm -f "$1"
    "$PY" - "$1" "$2" "${3:-wal}" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=" + sys.argv[3])
c.execute("create table t(id integer primary key, v blob)")
c.execute("begin")
for i in range(int(sys.argv[2])):
    c.execute("insert into t(v) values (randomblob(500))")
c.execute("commit")
c.close()
EOF
    [[ ! -e $1-wal ]] || fail "mksrc: $1-wal left behind"
}
restored_as() { # DB_NAME SRC: the bucket's newest generation of DB_NAME restores to SRC
    local out=$TEST_TMP/r.db
    rm -f "$out"
    cli -d "$1" restore -o "$out" >/dev/null 2>&1 || return 1
    [[ $(sha3 "$out") == $(sha3 "$2") ]] || return 1
    [[ $(sqlite3 "$out" "pragma integrity_check") == ok ]] || fail "$1: restored copy corrupt"
}
snapped() { # DB_NAME N: the daemon began at least N snapshot-only generations of DB_NAME
    (($(grep -c "written outside a WAL .* db=$1 " "$BFS_FS_LOG") >= $2))
}

mksrc "$S/early.db" 300
cp "$S/early.db" "$B/early.db" # in BACKING_DIR before the first mount, never written
mount_fs "$B" "$M" -o batch_interval=1
wait_until 60 restored_as early.db "$S/early.db"

# cp into the mount, then nothing: no commit through the mount ever happens
mksrc "$S/copied.db" 2000
cp "$S/copied.db" "$M/copied.db"
wait_until 60 restored_as copied.db "$S/copied.db"
repl_wait_synced 60 "$M" copied.db

# a copy that pauses halfway: the half may be snapshotted (it settled), the whole must follow
mksrc "$S/paused.db" 3000
"$PY" - "$S/paused.db" "$M/paused.db" "$BFS_FS_LOG" <<'EOF'
import re, sys, time
src = open(sys.argv[1], "rb").read()
half = len(src) // 2
with open(sys.argv[2], "wb") as f:
    f.write(src[:half])
    f.flush()
    deadline = time.monotonic() + 60
    while not re.search(r"written outside a WAL.* db=paused\.db ", open(sys.argv[3]).read()):
        if time.monotonic() > deadline:
            sys.exit("the torn half was never snapshotted")
        time.sleep(0.1)
    f.write(src[half:])
EOF
wait_until 60 snapped paused.db 2
wait_until 60 restored_as paused.db "$S/paused.db"

# over a database this mount replicates, after its app closed (the -wal is gone): the bucket's
# history must lead to the copy, not continue the old file (it silently restored the old one)
repl_insert "$M/own.db" 50
repl_wait_synced 60 "$M" own.db
mksrc "$S/over.db" 400
cp "$S/over.db" "$M/own.db"
wait_until 60 restored_as own.db "$S/over.db"
# ...and with a commit right after the copy, before the stager has seen it settle
cp "$S/copied.db" "$M/own.db"
sqlite3 "$M/own.db" "insert into t(v) values (x'00')"
cp "$M/own.db" "$S/own-now.db"
repl_wait_synced 60 "$M" own.db
restored_as own.db "$S/own-now.db" || fail "own.db: the commit after the copy restores elsewhere"
# ...and with the daemon killed right after the copy, before its snapshot: the next mount
# takes it (the change is saved at once; before, it was forgotten until the next commit)
mksrc "$S/killed.db" 200
cp "$S/killed.db" "$M/own.db"
kill -KILL "$BFS_FS_PID"
wait "$BFS_FS_PID" 2>/dev/null || true
fusermount3 -u -z "$M" || fail "fusermount3 -u -z failed"
mount_fs "$B" "$M" -o batch_interval=1
wait_until 60 restored_as own.db "$S/killed.db"

# a rollback-journal database is passed through, never uploaded
mksrc "$S/journal.db" 10 delete
cp "$S/journal.db" "$M/journal.db"
repl_wait_synced 60 "$M"
# a healthy mount shows no S3 failures (the 404s of absent tombstones and leases are answers)
"$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["s3"]; sys.exit(s["failures"] != 0)' \
    "$M/.bottomless/status" || fail "S3 failures on a healthy mount: $(repl_status "$M")"
unmount_fs "$M"
[[ -z $(gens journal.db) ]] || fail "journal.db (rollback journal) reached the bucket"
[[ $(gens copied.db | wc -l) == 1 ]] || fail "copied.db: one generation expected: $(gens copied.db)"

# over a database restored from the bucket (a fresh machine): the copy replaces it there too
B2=$TEST_TMP/back2
mkdir -p "$B2"
mount_fs "$B2" "$M" -o batch_interval=1
wait_until 30 test -e "$M/copied.db"
mksrc "$S/newer.db" 500
cp "$S/newer.db" "$M/copied.db"
[[ $(sha3 "$M/copied.db") == $(sha3 "$S/newer.db") ]] || fail "copied.db in the mount differs"
wait_until 60 restored_as copied.db "$S/newer.db"
new=$(gens copied.db | head -n1) old=$(gens copied.db | tail -n1) # newest first
[[ $old != "$new" && $(dep_of copied.db "$new") == "$old" ]] ||
    fail "copied.db: the new generation must descend from the old one: $(gens copied.db)"

# copied in right before the unmount: the flush snapshots it without waiting for it to settle
mksrc "$S/last.db" 800
cp "$S/last.db" "$M/last.db"
unmount_fs "$M"
restored_as last.db "$S/last.db" || fail "last.db (copied in before the unmount) not in the bucket"
note ok
