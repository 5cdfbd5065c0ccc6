#!/usr/bin/env bash
# 33-restore-memory: a ~150 MiB database (zstd snapshot) plus a ~40 MiB single transaction in
# one batch restores with bounded memory (max RSS well under 100 MiB: pending pages spill to a
# scratch file, downloads go to scratch files) and the same content.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"

MK=$BFS_BIN/tools/mkbucket
RT=$BFS_BIN/tools/restoretool
B=$(new_bucket)
W=$TEST_TMP
src=$W/big.db
sqlite3 "$src" "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000)
  INSERT INTO t(b) SELECT randomblob(1000) FROM c;" >/dev/null
echo "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000) INSERT INTO t(b) SELECT randomblob(1000) FROM c; UPDATE t SET b = zeroblob(10) WHERE id % 50 = 0; COMMIT;" >"$W/big.sql"
"$MK" -b "$B" -n big -D "$src" -c zstd "$W/big.sql" >/dev/null 2>&1
size=$(stat -c %s "$src")
note "source $((size >> 20)) MiB"
/usr/bin/time -f '%M' -o "$W/rss" "$RT" -b "$B" -n big -o "$W/out.db" >"$W/out.txt" || fail "restore failed"
rss_kb=$(tail -1 "$W/rss")
note "max RSS ${rss_kb} KiB"
[[ $(sqlite3 "$W/out.db" .sha3sum) == $(sqlite3 "$src" .sha3sum) ]] || fail "content differs"
grep -q '^partial: 0' "$W/out.txt" || fail "partial: $(cat "$W/out.txt")"
limit=$((100 * 1024))
[[ -n ${BFS_SAN:-} || $BFS_BIN == */san ]] && limit=$((300 * 1024)) # ASan shadow memory
((rss_kb < limit)) || fail "max RSS ${rss_kb} KiB is not under $((limit / 1024)) MiB"
