#!/usr/bin/env bash
# 56-cli-mkbucket: the CLI on buckets written by our own C writer (tests/tools/mkbucket): a
# .dep chain without snapshots mixing zstd, gz and raw (and legacy batch names), 512-byte pages
# and a transaction big enough to spill SQLite's cache; a 65536-byte-page database. ls -v shows
# the page size and chain, restore (newest and -g) and verify match the source states
# (.sha3sum, integrity_check), snapshot shortens the chain and rm --older-than then drops the
# old generations while the database still restores.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
MK=$BFS_BIN/tools/mkbucket
[[ -x $MK ]] || fail "$MK missing (make tools)"
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
export TMPDIR=$TEST_TMP/tmp
mkdir -p "$TMPDIR" "$TEST_TMP"/{s1,s2,s3,big}
cd "$TEST_TMP"
sha() { sqlite3 "$1" .sha3sum; }
same() { # same RESTORED SOURCE
    [[ $(sqlite3 "$1" 'PRAGMA integrity_check') == ok ]] || fail "$1: integrity_check"
    [[ $(sha "$1") == $(sha "$2") ]] || fail "$1 differs from $2"
}

cat >a1.sql <<'EOF'
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB);
INSERT INTO t(b, c) WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 50) SELECT 'row' || value, randomblob(300) FROM s;
EOF
cat >a2.sql <<'EOF'
UPDATE t SET b = b || '!' WHERE a % 3 = 0;
CREATE INDEX tb ON t(b);
EOF
cat >a3.sql <<'EOF'
DELETE FROM t WHERE a > 40;
INSERT INTO t(b, c) VALUES ('gz', zeroblob(2000));
EOF
cat >a4.sql <<'EOF'
BEGIN;
INSERT INTO t(b, c) WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 400) SELECT 'big' || value, randomblob(400) FROM s;
UPDATE t SET c = randomblob(100) WHERE a < 30;
COMMIT;
EOF
T1=1700000000 T2=1700086400 T3=1700172800
g1=$("$MK" -b "$bucket" -n a.db -D src.db --page-size 512 --created $T1 --ts $((T1 + 5)) \
    --state-dir s1 a1.sql a2.sql) || fail "mkbucket g1"
g2=$("$MK" -b "$bucket" -n a.db -D src.db --created $T2 --ts $((T2 + 5)) --parent "$g1" \
    --no-snapshot -c gz --state-dir s2 a3.sql) || fail "mkbucket g2"
g3=$("$MK" -b "$bucket" -n a.db -D src.db --created $T3 --ts $((T3 + 5)) --parent "$g2" \
    --no-snapshot -c raw --legacy-names --cache-size 10 --state-dir s3 a4.sql) ||
    fail "mkbucket g3"
note "generations: $g1 $g2 $g3"

out=$("$CLI" -d a.db ls -v) || fail "ls -v"
[[ $(grep -c $'^\tpage size:            512$' <<<"$out") == 3 ]] || fail "ls -v page sizes: $out"
grep -qxF $'\tprevious generation:  '"$g2" <<<"$out" || fail "ls -v: g3's parent"
[[ $(grep -c "no main database snapshot file found" <<<"$out") == 2 ]] || fail "ls -v snapshots"

"$CLI" -d a.db restore -o r3.db >/dev/null || fail "restore newest"
same r3.db s3/state-1.db
"$CLI" -d a.db restore -g "$g2" -o r2.db >/dev/null || fail "restore -g g2"
same r2.db s2/state-1.db
"$CLI" -d a.db restore -g "$g1" -o r1.db >/dev/null || fail "restore -g g1"
same r1.db s1/state-2.db
"$CLI" -d a.db verify | grep -qx "Verification: ok" || fail "verify"

# snapshot of g3 (from g2's chain), then the old generations can go
"$CLI" -d a.db snapshot | grep -qx "snapshot uploaded for generation: $g3" || fail "snapshot"
out=$("$CLI" -d a.db rm --older-than 2023-11-16T22:13:20Z) || fail "rm --older-than"
grep -qx "Removed 2 generations ([0-9]* objects) of a.db" <<<"$out" || fail "rm: $out"
[[ $("$CLI" -d a.db ls | cut -d' ' -f1) == "$g3" ]] || fail "ls after rm"
"$CLI" -d a.db restore -o r3b.db >/dev/null || fail "restore after rm"
same r3b.db s3/state-1.db

# 64 KiB pages
cat >b1.sql <<'EOF'
CREATE TABLE big(x BLOB);
INSERT INTO big WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 5) SELECT randomblob(70000) FROM s;
EOF
"$MK" -b "$bucket" -n big.db -D bigsrc.db --page-size 65536 --state-dir big b1.sql >/dev/null ||
    fail "mkbucket big"
"$CLI" -d big.db ls -v | grep -qxF $'\tpage size:            65536' || fail "ls -v 65536"
"$CLI" -d big.db restore -o rbig.db >/dev/null || fail "restore big"
same rbig.db big/state-1.db
note "ok"
