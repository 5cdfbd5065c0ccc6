#!/usr/bin/env bash
# 30-restore-roundtrip: generations built by mkbucket from real SQLite databases (snapshot +
# batches, a .dep chain without snapshots, zstd/gz/raw, legacy batch names) restore to the same
# content (.sha3sum) and pass integrity_check; restoring an older generation gives its state.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

MK=$BFS_BIN/tools/mkbucket
RT=$BFS_BIN/tools/restoretool
B=$(new_bucket)
W=$TEST_TMP
sha() { sqlite3 "$1" .sha3sum; }
integrity() { [[ $(sqlite3 "$1" 'PRAGMA integrity_check') == ok ]] || fail "integrity_check failed on $1"; }
field() { sed -n "s/^$2: //p" "$1"; }

# SQL scripts: each one is a few transactions
for i in 1 2 3 4 5 6; do
    {
        echo "BEGIN; WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c WHERE value < $((150 * i))) INSERT INTO t(v, b) SELECT 'file$i-' || value, randomblob(200 + value % 700) FROM c; COMMIT;"
        echo "UPDATE t SET v = v || '-u$i' WHERE id % 7 = $i % 7;"
        echo "DELETE FROM t WHERE id % 11 = $i;"
        echo "CREATE TABLE IF NOT EXISTS extra$i(x); INSERT INTO extra$i VALUES ($i), (zeroblob(5000));"
    } >"$W/s$i.sql"
done

src=$W/src.db
sqlite3 "$src" "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB); CREATE INDEX tv ON t(v); INSERT INTO t(v, b) SELECT 'seed' || value, randomblob(300) FROM generate_series(1, 200);" >/dev/null
now=$(date +%s)
DB=ns-round:default

# gen1: zstd snapshot + zstd batches (one per transaction)
g1=$("$MK" -b "$B" -n $DB -D "$src" -c zstd --created $((now - 300)) --ts $((now - 290)) --ts-step 1 --batch-per-txn "$W/s1.sql" "$W/s2.sql")
sha1=$(sha "$src")
# gen2: no snapshot, .dep -> gen1, gzip batches (one per file)
g2=$("$MK" -b "$B" -n $DB -D "$src" -c gz --no-snapshot --parent "$g1" --created $((now - 200)) --ts $((now - 190)) "$W/s3.sql" "$W/s4.sql")
sha2=$(sha "$src")
# gen3: no snapshot, .dep -> gen2, raw batches, with a small cache so SQLite spills
g3=$("$MK" -b "$B" -n $DB -D "$src" -c raw --no-snapshot --parent "$g2" --cache-size 5 --created $((now - 100)) --ts $((now - 90)) "$W/s5.sql" "$W/s6.sql")
sha3=$(sha "$src")
note "generations $g1 $g2 $g3"
[[ $sha1 != "$sha2" && $sha2 != "$sha3" ]] || fail "test data did not change between generations"

# newest: snapshot of gen1 + batches of gen1, gen2, gen3
"$RT" -b "$B" -n $DB -o "$W/r3.db" >"$W/r3.out" || { cat "$W/r3.out"; fail "restore newest failed"; }
cat "$W/r3.out" >&2
[[ $(field "$W/r3.out" generation) == "$g3" ]] || fail "restored wrong generation"
[[ $(field "$W/r3.out" generations) == 3 ]] || fail "chain should have 3 generations"
[[ $(field "$W/r3.out" partial) == 0 ]] || fail "unexpected partial restore"
[[ $(field "$W/r3.out" snapshot) == *"$g1/db.zstd" ]] || fail "should use gen1's snapshot"
integrity "$W/r3.db"
[[ $(sha "$W/r3.db") == "$sha3" ]] || fail "newest restore differs from the source"
[[ ! -e $W/r3.db-wal && ! -e $W/r3.db-shm ]] || fail "stale -wal/-shm left"

# older generations by id
"$RT" -b "$B" -n $DB -o "$W/r2.db" -g "$g2" >"$W/r2.out" || fail "restore gen2 failed"
[[ $(sha "$W/r2.db") == "$sha2" ]] || fail "gen2 restore differs"
"$RT" -b "$B" -n $DB -o "$W/r1.db" -g "$g1" >"$W/r1.out" || fail "restore gen1 failed"
[[ $(sha "$W/r1.db") == "$sha1" ]] || fail "gen1 restore differs"
integrity "$W/r1.db"

# restoring over an existing file replaces it atomically and removes stale -wal/-shm
echo junk >"$W/r1.db-wal"
echo junk >"$W/r1.db-shm"
"$RT" -b "$B" -n $DB -o "$W/r1.db" >/dev/null || fail "restore over existing failed"
[[ $(sha "$W/r1.db") == "$sha3" ]] || fail "restore over existing file differs"
[[ ! -e $W/r1.db-wal && ! -e $W/r1.db-shm ]] || fail "stale -wal/-shm not removed"

# two objects starting at the same frame: the newest ts wins (a stale, older upload with
# garbage is ignored whatever its byte order); a newer garbage object would win and be reported
k=$(awss3 s3api list-objects --bucket "$B" --prefix "$DB-$g3/0" --query 'Contents[0].Key' --output text)
name=${k##*/}; first=${name%%-*}; last=${name#*-}; last=${last%%-*}
head -c 5000 /dev/urandom >"$W/garbage"
awss3 s3 cp "$W/garbage" "s3://$B/$DB-$g3/$first-000000000002-1.raw" >/dev/null
"$RT" -b "$B" -n $DB -o "$W/r6.db" --strict >"$W/r6.out" || fail "stale duplicate batch was not ignored"
[[ $(sha "$W/r6.db") == "$sha3" ]] || fail "stale duplicate changed the result"
awss3 s3 cp "$W/garbage" "s3://$B/$DB-$g3/$first-$last-9999999999.raw" >/dev/null
"$RT" -b "$B" -n $DB -o "$W/r6.db" >"$W/r6.out" || fail "restore with newer duplicate failed"
[[ $(field "$W/r6.out" partial) == 1 && $(field "$W/r6.out" reason) == *"-9999999999.raw"* ]] ||
    fail "newest duplicate should have been used (and found corrupt): $(cat "$W/r6.out")"
[[ $(sha "$W/r6.db") == "$sha2" ]] || fail "partial restore should end at gen2's state"
awss3 s3 rm "s3://$B/$DB-$g3/$first-$last-9999999999.raw" >/dev/null

# chain listing
"$RT" -b "$B" -n $DB --chain >"$W/chain.out" || fail "chain failed"
[[ $(grep -c '^chain: ' "$W/chain.out") == 3 && $(field "$W/chain.out" chain_has_snapshot) == 1 ]] ||
    fail "chain wrong: $(cat "$W/chain.out")"

# a database whose name extends this one does not confuse generation listing
src2=$W/other.db
sqlite3 "$src2" "PRAGMA journal_mode=WAL; CREATE TABLE o(x); INSERT INTO o VALUES (42);" >/dev/null
"$MK" -b "$B" -n "$DB-2" -D "$src2" --created $now --ts $now >/dev/null
"$RT" -b "$B" -n $DB -o "$W/r4.db" >"$W/r4.out" || fail "restore with sibling db failed"
[[ $(field "$W/r4.out" generation) == "$g3" && $(sha "$W/r4.db") == "$sha3" ]] || fail "sibling db confused restore"
"$RT" -b "$B" -n "$DB-2" -o "$W/o.db" >/dev/null || fail "restore sibling failed"
[[ $(sqlite3 "$W/o.db" 'SELECT x FROM o') == 42 ]] || fail "sibling content wrong"

# WAL-only first generation (no snapshot, no .dep) with raw legacy batch names, page size 1024
src3=$W/legacy.db
echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);" >"$W/schema.sql"
g5=$("$MK" -b "$B" -n ns-legacy2 -D "$src3" -c gz --page-size 1024 --no-snapshot --legacy-names --created $now --ts $now "$W/schema.sql" "$W/s1.sql" "$W/s2.sql")
"$RT" -b "$B" -n ns-legacy2 -o "$W/r5.db" >"$W/r5.out" || { cat "$W/r5.out"; fail "legacy restore failed"; }
[[ $(field "$W/r5.out" snapshot) == none && $(field "$W/r5.out" page_size) == 1024 ]] || fail "legacy: $(cat "$W/r5.out")"
[[ $(sha "$W/r5.db") == "$(sha "$src3")" ]] || fail "legacy WAL-only restore differs"
integrity "$W/r5.db"

# unknown generation / database are clear errors, and leave no file behind
if "$RT" -b "$B" -n ns-nothing -o "$W/none.db" 2>"$W/none.err"; then fail "restore of unknown db succeeded"; fi
grep -q "no generation found for database ns-nothing" "$W/none.err" || fail "message: $(cat "$W/none.err")"
[[ ! -e $W/none.db ]] || fail "target created on failure"
[[ -z $(find "$W" -name '.*.restore-*') ]] || fail "temp files left behind"
note "round trip ok"
