#!/usr/bin/env bash
# 15-s3-s3rver: the whole product against a second S3 server written apart from Swift (s3rver,
# npm; tests/lib/s3rver.sh): every s3/ operation through s3check (keys with reserved
# characters, a 20 MiB multipart PUT, parallel ranged GETs, paged listings, DeleteObjects),
# then a mount writing a database over two generations with a 24 MB transaction, unmounted;
# the CLI's ls/restore/verify/rm and a lazy restore through a new mount must give back the
# same content (.sha3sum, row count, integrity_check), and awscli must read what we wrote.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/lib/s3rver.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

S3CHECK=$BFS_BIN/tools/s3check
[[ -x $S3CHECK ]] || fail "missing $S3CHECK (make tools)"
T=$TEST_TMP

s3rver_start "$T/s3rver"
note "s3rver at $S3RVER_URL"
# From here every helper (new_bucket, awss3, cli, the daemon) talks to s3rver.
export BFS_S3_ENDPOINT=$S3RVER_URL LIBSQL_BOTTOMLESS_ENDPOINT=$S3RVER_URL
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=S3RVER LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
repl_bucket
s3c() { "$S3CHECK" --bucket "$BUCKET" "$@"; }

# --- S3 operations -------------------------------------------------------------------------
s3c headbucket || fail "headbucket"
head -c 300001 /dev/urandom >"$T/small.bin"
for k in "db/plain.bin" "db/sp ace+plus=eq&amp%25~.bin" "db/ütf8-ሴ/x.bin"; do
    s3c put "$k" "$T/small.bin" || fail "put '$k'"
    s3c get "$k" "$T/got.bin" && cmp -s "$T/small.bin" "$T/got.bin" || fail "get '$k' differs"
done
s3c getrange db/plain.bin 1000 5000 "$T/range.bin" || fail "getrange"
cmp -s <(tail -c +1001 "$T/small.bin" | head -c 5000) "$T/range.bin" || fail "range differs"
[[ $(s3c head db/plain.bin) == size=300001\ * ]] || fail "head: $(s3c head db/plain.bin)"

head -c $((20 * 1024 * 1024 + 12345)) /dev/urandom >"$T/big.bin"
s3c --part-size $((5 * 1024 * 1024)) --threshold $((8 * 1024 * 1024)) --stats \
    putfd db/big.bin "$T/big.bin" >"$T/put.stats" || fail "multipart putfd"
s3c --part-size $((5 * 1024 * 1024)) --parallel 3 getfd db/big.bin "$T/got.bin" ||
    fail "parallel getfd"
cmp -s "$T/big.bin" "$T/got.bin" || fail "multipart object came back different"
awss3 s3 cp "s3://$BUCKET/db/big.bin" "$T/aws.bin" && cmp -s "$T/big.bin" "$T/aws.bin" ||
    fail "awscli reads the multipart object differently"

s3c putmany many/k 25 || fail "putmany"
s3c ls --prefix many/ --max-keys 7 >"$T/ls.out" || fail "ls with pages"
[[ $(grep -c '^K ' "$T/ls.out") == 25 && $(tail -n 1 "$T/ls.out") == "pages 4" ]] ||
    { cat "$T/ls.out" >&2; fail "paged listing: want 25 keys in 4 pages"; }
s3c ls --v1 --prefix many/ --max-keys 10 >"$T/ls1.out" || fail "ls v1 with pages"
[[ $(grep -c '^K ' "$T/ls1.out") == 25 ]] || { cat "$T/ls1.out" >&2; fail "v1 listing"; }
grep '^K ' "$T/ls.out" | awk '{ print $2 }' | s3c rmmany - || fail "DeleteObjects"
s3c ls --prefix many/ >"$T/ls.out"
! grep -q '^K ' "$T/ls.out" || fail "keys left after DeleteObjects"
note "S3 operations ok"

# --- a database replicated through the mount -----------------------------------------------
B=$T/back M=$T/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
"$PY" - "$M/shop.db" <<'EOF' || fail "app failed"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
assert c.execute("pragma journal_mode=wal").fetchone()[0] == "wal"
c.execute("create table t(id integer primary key, v blob)")
for i in range(1500):
    c.execute("insert into t(v) values (?)", (b"row-%d" % i,))
assert c.execute("pragma wal_checkpoint(truncate)").fetchone()[0] == 0  # a new generation
c.execute("begin")
c.execute("with recursive s(i) as (select 1 union all select i + 1 from s where i < 6000) "
          "insert into t(v) select randomblob(4000) from s")
c.execute("commit")
for i in range(200):
    c.execute("insert into t(v) values (?)", (b"tail-%d" % i,))
c.close()
EOF
sqlite3 "$M/scratch.db" 'pragma journal_mode=wal; create table x(a); insert into x values (1);' \
    >/dev/null || fail "scratch.db"
repl_wait_synced 120 "$M"
WANT=$(sha3 "$M/shop.db")
ROWS=$(sqlite3 "$M/shop.db" 'select count(*) from t')
[[ $ROWS == 7700 ]] || fail "rows on the mount: $ROWS"
unmount_fs "$M"

mapfile -t G < <(gens shop.db)
((${#G[@]} >= 2)) || fail "want at least 2 generations of shop.db, got ${#G[@]}"
cli ls >"$T/ls.txt" || fail "cli ls"
grep -q '^shop.db ' "$T/ls.txt" && grep -q '^scratch.db ' "$T/ls.txt" ||
    { cat "$T/ls.txt" >&2; fail "cli ls does not list both databases"; }
cli -d shop.db restore --strict -o "$T/r.db" >"$T/restore.txt" ||
    { cat "$T/restore.txt" >&2; fail "cli restore"; }
[[ $(sha3 "$T/r.db") == "$WANT" ]] || fail "restored content differs"
[[ $(sqlite3 "$T/r.db" 'pragma integrity_check; select count(*) from t') == $'ok\n7700' ]] ||
    fail "restored database: integrity or row count"
cli -d shop.db verify >/dev/null || fail "cli verify"
# awscli reads a snapshot we wrote: a zstd frame
snap=$(awss3 s3 ls --recursive "s3://$BUCKET/" | awk '{ print $4 }' | grep '^shop.db-.*/db.zstd$' |
    head -n 1)
[[ -n $snap ]] || fail "no snapshot of shop.db in the bucket"
awss3 s3 cp "s3://$BUCKET/$snap" "$T/snap.zst"
[[ $(od -An -N4 -tx1 "$T/snap.zst" | tr -d ' ') == 28b52ffd ]] || fail "snapshot is not zstd"
note "mount, restore and verify ok"

# lazy restore: a new mount on an empty directory lists shop.db and restores it on open
B2=$T/back2 M2=$T/mnt2
mkdir -p "$B2" "$M2"
mount_fs "$B2" "$M2"
wait_until 30 test -e "$M2/shop.db"
[[ $(sha3 "$M2/shop.db") == "$WANT" ]] || fail "lazily restored content differs"
[[ $(sqlite3 "$M2/shop.db" 'pragma integrity_check') == ok ]] || fail "lazy restore integrity"
unmount_fs "$M2"

# rm: the generations of scratch.db go, with every key under them
mapfile -t SG < <(gens scratch.db)
((${#SG[@]} >= 1)) || fail "no generation of scratch.db"
for g in "${SG[@]}"; do
    cli -d scratch.db rm -g "$g" --force >/dev/null || fail "cli rm -g $g"
done
left=$(awss3 s3 ls --recursive "s3://$BUCKET/" | awk '{ print $4 }' | grep -c '^scratch.db-' || true)
[[ $left == 0 ]] || fail "$left keys of scratch.db generations left after rm"
cli -d shop.db restore -o "$T/r2.db" >/dev/null && [[ $(sha3 "$T/r2.db") == "$WANT" ]] ||
    fail "shop.db no longer restores after removing scratch.db"
note "lazy restore and rm ok"
