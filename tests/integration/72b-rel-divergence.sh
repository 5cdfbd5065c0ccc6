#!/usr/bin/env bash
# 72b-rel-divergence: the local database and the bucket diverged. Daemon A (backing dir A)
# writes x.db and y.db and unmounts; daemon B on an empty backing dir, same bucket, restores
# both lazily, adds rows of its own and unmounts; A is mounted again on backing dir A, whose
# state still expects A's generations to be the bucket's newest, and writes more rows. For
# each database A logs "local database and bucket diverged" naming both generations, deletes
# nothing (every generation listed before is still there, B's restores B's state with -g),
# uploads every generation it started, and the bucket's newest restores A's local database.
# x.db is written by one connection held open across the bucket check: its newest generation
# has a snapshot and a .dep naming B's. y.db is written by sqlite3 CLI calls: its generation
# started AND ended (the -wal deleted on close) before the check, which then begins a snapshot
# generation naming B's; we require B's generation on the .dep chain of the newest after a
# write that follows the warning.
# Clean unmounts release the leases, so no daemon waits for one to expire.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
BA=$TEST_TMP/backA BB=$TEST_TMP/backB MA=$TEST_TMP/mntA MB=$TEST_TMP/mntB
mkdir -p "$BA" "$BB" "$MA" "$MB"
DBS=(x.db y.db)

leases_gone() {
    local db
    for db in "${DBS[@]}"; do
        ! awss3 s3api head-object --bucket "$BUCKET" --key "$db.lease" >/dev/null 2>&1 || return 1
    done
}

# insert_rows DB WHO FIRST N: one transaction of N rows with ids FIRST.. from WHO
insert_rows() {
    sqlite3 "$1" "begin; with recursive s(i) as (select $3 union all select i + 1 from s
        where i < $3 + $4 - 1) insert into t(id, who, v) select i, '$2', randomblob(200)
        from s; commit;"
}

# rows_by_who FILE: "WHO:COUNT" lines
rows_by_who() {
    sqlite3 "$1" "select who || ':' || count(*) from t group by who order by who"
}

# restored DB FILE [-g GEN]: restores DB to FILE and checks its integrity
restored() {
    local db=$1 out=$2
    shift 2
    rm -f "$out"
    cli -d "$db" restore "$@" -o "$out" >/dev/null 2>"$out.err" ||
        { cat "$out.err" >&2; fail "restore of $db $* failed"; }
    [[ $(sqlite3 "$out" "pragma integrity_check") == ok ]] || fail "restore of $db $*: integrity_check"
}

# --- A writes both databases -------------------------------------------------------------------
mount_fs "$BA" "$MA" -o batch_interval=1
for db in "${DBS[@]}"; do
    sqlite3 "$MA/$db" "pragma journal_mode=wal; create table t(id integer primary key, who, v);" \
        >/dev/null
    insert_rows "$MA/$db" A 1 200
done
repl_wait_synced 60 "$MA" "${DBS[@]}"
unmount_fs "$MA"
declare -A GEN_A GEN_B SUM_B
for db in "${DBS[@]}"; do
    GEN_A[$db]=$(gens "$db" | head -n 1) # gens: newest first
    [[ -n ${GEN_A[$db]} ]] || fail "A uploaded no generation of $db"
done
wait_until 15 leases_gone

# --- B, elsewhere, continues the bucket's databases --------------------------------------------
mount_fs "$BB" "$MB" -o batch_interval=1
for db in "${DBS[@]}"; do
    [[ $(sqlite3 "$MB/$db" "select count(*) from t") == 200 ]] || fail "B's lazy restore of $db"
    insert_rows "$MB/$db" B 1001 100
done
repl_wait_synced 60 "$MB" "${DBS[@]}"
for db in "${DBS[@]}"; do SUM_B[$db]=$(sha3 "$MB/$db"); done
unmount_fs "$MB"
for db in "${DBS[@]}"; do
    GEN_B[$db]=$(gens "$db" | head -n 1)
    [[ -n ${GEN_B[$db]} && ${GEN_B[$db]} != "${GEN_A[$db]}" ]] ||
        fail "B did not start a generation of $db of its own"
    gens "$db" >"$TEST_TMP/gens.before.$db"
    note "$db: A's generation ${GEN_A[$db]}, B's ${GEN_B[$db]}"
done
wait_until 15 leases_gone

# --- A again: its local databases know nothing of B's rows -------------------------------------
mount_fs "$BA" "$MA" -o batch_interval=1
LOGA=$BFS_FS_LOG
insert_rows "$MA/y.db" A2 2001 50
"$PY" - "$MA/x.db" "$LOGA" <<'EOF' || fail "x.db writer failed"
import sqlite3, sys, time
db, log = sys.argv[1:3]
c = sqlite3.connect(db, isolation_level=None)
def rows(who, first, n):
    c.execute("begin")
    c.executemany("insert into t(id, who, v) values (?, ?, randomblob(200))",
                  [(i, who) for i in range(first, first + n)])
    c.execute("commit")
rows("A2", 2001, 50)
end = time.time() + 60
while "bucket diverged db=x.db " not in open(log).read():
    if time.time() > end:
        sys.exit("no divergence warning for x.db")
    time.sleep(0.1)
rows("A3", 3001, 50)
c.close()
EOF
for db in "${DBS[@]}"; do
    wait_until 60 grep -qF "replicator: local database and bucket diverged db=$db local_gen=${GEN_A[$db]} bucket_gen=${GEN_B[$db]}" "$LOGA"
done
insert_rows "$MA/y.db" A3 3001 50 # after the check: its generation descends from B's
repl_wait_synced 90 "$MA" "${DBS[@]}"
grep -E 'diverged|new generation' "$LOGA" | sed 's/^/# A: /' >&2

declare -A GEN_NEW
for db in "${DBS[@]}"; do
    sum_a=$(sha3 "$MA/$db")
    [[ $(sqlite3 "$MA/$db" "select count(*) from t where who = 'B'") == 0 ]] ||
        fail "A's local $db holds B's rows"
    gens "$db" >"$TEST_TMP/gens.after.$db"
    GEN_NEW[$db]=$(head -n 1 "$TEST_TMP/gens.after.$db")
    [[ ${GEN_NEW[$db]} != "${GEN_B[$db]}" && ${GEN_NEW[$db]} != "${GEN_A[$db]}" ]] ||
        fail "A did not start a new generation of $db"
    # the bucket's newest restores exactly A's database
    restored "$db" "$TEST_TMP/new.$db"
    [[ $(sha3 "$TEST_TMP/new.$db") == "$sum_a" ]] || fail "newest restore of $db differs from A's"
    [[ $(rows_by_who "$TEST_TMP/new.$db") == $'A:200\nA2:50\nA3:50' ]] ||
        fail "newest restore of $db rows: $(rows_by_who "$TEST_TMP/new.$db" | tr '\n' ' ')"
    # both histories kept: nothing listed before is gone, B's generation restores B's state
    while read -r g; do
        grep -qxF "$g" "$TEST_TMP/gens.after.$db" || fail "generation $g of $db was deleted"
    done <"$TEST_TMP/gens.before.$db"
    cli -d "$db" ls >"$TEST_TMP/ls.$db" || fail "ls $db"
    grep -qF "${GEN_B[$db]}" "$TEST_TMP/ls.$db" ||
        { cat "$TEST_TMP/ls.$db" >&2; fail "ls does not list B's generation of $db"; }
    restored "$db" "$TEST_TMP/b.$db" -g "${GEN_B[$db]}"
    [[ $(sha3 "$TEST_TMP/b.$db") == "${SUM_B[$db]}" ]] ||
        fail "restore -g ${GEN_B[$db]} differs from B's $db"
    [[ $(rows_by_who "$TEST_TMP/b.$db") == $'A:200\nB:100' ]] ||
        fail "B's restore of $db rows: $(rows_by_who "$TEST_TMP/b.$db" | tr '\n' ' ')"
    # what A staged reached the bucket, also generations started before the check
    for g in $(sed -nE "s/.*replicator: new generation db=$db gen=([0-9a-f-]+) .*/\\1/p" "$LOGA"); do
        grep -qxF "$g" "$TEST_TMP/gens.after.$db" ||
            fail "A's generation $g of $db never reached the bucket"
    done
done

# x.db (generation open at the check): the newest has a snapshot and a .dep naming B's
[[ $(dep_of x.db "${GEN_NEW[x.db]}") == "${GEN_B[x.db]}" ]] ||
    fail "x.db's newest .dep is '$(dep_of x.db "${GEN_NEW[x.db]}")', not B's ${GEN_B[x.db]}"
cli -d x.db ls -v -g "${GEN_NEW[x.db]}" >"$TEST_TMP/ls.new" || fail "ls -v -g ${GEN_NEW[x.db]}"
grep -qE "previous generation: +${GEN_B[x.db]}\$" "$TEST_TMP/ls.new" ||
    { cat "$TEST_TMP/ls.new" >&2; fail "ls -v does not name B's generation as x.db's parent"; }
grep -q "main database snapshot:" "$TEST_TMP/ls.new" ||
    { cat "$TEST_TMP/ls.new" >&2; fail "x.db's newest generation has no snapshot"; }
# y.db: B's generation is on the .dep chain of the newest
chain=$(descends_from y.db "${GEN_NEW[y.db]}" "${GEN_B[y.db]}") ||
    fail "B's generation of y.db is not on the newest's .dep chain: $chain"
note "y.db chain: $chain"

unmount_fs "$MA"
note "diverged: A continued in x.db ${GEN_NEW[x.db]} (.dep ${GEN_B[x.db]}), B's generations kept"
