#!/usr/bin/env bash
# 65-repl-durable: with -o durable and PRAGMA synchronous=FULL, every commit is in the bucket
# when it returns: after each of 12 commits (Python's sqlite3 on the mount), an independent
# restore of the bucket (bottomless-cli, and the raw batch objects listed with awscli) already
# holds that transaction. The -wal fsync that SQLite issues is what waits for S3.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
# a long batch interval: without the durable wait, nothing would be uploaded for 30 s
mount_fs "$B" "$M" -o durable,batch_interval=30

"$PY" - "$M/app.db" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("pragma synchronous=FULL")
c.execute("create table t(id integer primary key, v text)")
c.close()
EOF

FIFO_IN=$TEST_TMP/app.in FIFO_OUT=$TEST_TMP/app.out
mkfifo "$FIFO_IN" "$FIFO_OUT"
# The app commits one row per line it reads and answers "committed N" once the commit returned.
cat >"$TEST_TMP/app.py" <<'EOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma synchronous=FULL")
for line in sys.stdin:
    i = int(line)
    t0 = time.time()
    c.execute("begin")
    c.execute("insert into t(id, v) values (?, ?)", (i, "durable-%d" % i))
    c.execute("commit")
    print("committed %d %.3f" % (i, time.time() - t0), flush=True)
c.close()
EOF
"$PY" "$TEST_TMP/app.py" "$M/app.db" <"$FIFO_IN" >"$FIFO_OUT" &
app=$!
on_exit bash -c "kill $app 2>/dev/null || true"
exec 7>"$FIFO_IN" 8<"$FIFO_OUT"

for i in $(seq 1 12); do
    echo "$i" >&7
    read -r word n secs <&8 || fail "app died"
    [[ $word == committed && $n == "$i" ]] || fail "app said '$word $n'"
    note "commit $i returned after ${secs}s"
    out=$TEST_TMP/r$i.db
    cli -d app.db restore -o "$out" >/dev/null || fail "restore after commit $i failed"
    got=$(sqlite3 "$out" "select coalesce(max(id),0) || ':' || count(*) from t")
    [[ $got == "$i:$i" ]] || fail "after commit $i returned, the bucket holds max:count $got"
    # the batch objects of the bucket cover it too (read back with awscli)
    listing=$(awss3 s3 ls --recursive "s3://$BUCKET/")
    grep -qE 'app\.db-[0-9a-f-]{36}/[0-9]{12}-[0-9]{12}-[0-9]+\.' <<<"$listing" ||
        fail "no WAL batch object in the bucket after commit $i"
done
exec 7>&- 8<&-
wait "$app" || fail "app failed"
sum=$(sha3 "$M/app.db")
unmount_fs "$M"
rm -f "$TEST_TMP/final.db"
cli -d app.db restore -o "$TEST_TMP/final.db" >/dev/null
[[ $(sha3 "$TEST_TMP/final.db") == "$sum" ]] || fail "final restore differs"
note ok
