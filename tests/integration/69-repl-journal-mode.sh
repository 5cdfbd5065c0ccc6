#!/usr/bin/env bash
# 69-repl-journal-mode: a database in a rollback-journal mode (DELETE, the SQLite default) is
# passed through but not replicated: the daemon says so once in its log (not once per
# transaction), the status file reports it as unprotected, nothing of it reaches the bucket; a
# WAL database next to it is protected and replicated.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
log=$BFS_FS_LOG

sqlite3 "$M/journal.db" "create table t(x);" >/dev/null
for i in $(seq 1 20); do echo "insert into t values ($i);"; done | sqlite3 "$M/journal.db"
[[ $(sqlite3 "$M/journal.db" "pragma journal_mode;") == delete ]] || fail "journal.db is not in DELETE mode"
sqlite3 "$M/wal.db" "pragma journal_mode=wal; create table t(x); insert into t values (1);" >/dev/null

status_of() { # status_of PATH FIELD
    "$PY" - "$M/.bottomless/status" "$1" "$2" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
d = {d["path"]: d for d in st["databases"]}.get(sys.argv[2])
print("missing" if d is None else json.dumps(d.get(sys.argv[3])))
PY
}
wait_until 30 test "$(status_of journal.db protected)" = false
[[ $(status_of journal.db journal_mode) == '"delete"' ]] ||
    fail "journal.db journal_mode: $(status_of journal.db journal_mode)"
repl_wait_synced 60 "$M" wal.db
[[ $(status_of wal.db protected) == true ]] || fail "wal.db not protected: $(repl_status "$M")"

n_warn=$(grep -c 'rollback-journal mode and NOT replicated db=journal.db' "$log" || true)
[[ $n_warn == 1 ]] || fail "expected exactly one warning for journal.db, got $n_warn: $(cat "$log")"
unmount_fs "$M"

keys=$(awss3 s3api list-objects-v2 --bucket "$BUCKET" --query 'Contents[].Key' --output text)
grep -q '^wal.db-\|[[:space:]]wal.db-' <<<"$keys" || fail "wal.db not in the bucket: $keys"
if grep -q 'journal.db' <<<"$keys"; then fail "journal.db objects in the bucket: $keys"; fi
note "journal-mode database reported unprotected, warned once, not uploaded"
