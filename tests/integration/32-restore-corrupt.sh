#!/usr/bin/env bash
# 32-restore-corrupt: a flipped bit, a truncated batch, a missing batch and a short .meta each
# give the documented outcome: by default a partial restore at the last consistent transaction
# with a reason naming the key; with --strict a failure naming the key and no target written.
# A corrupt snapshot falls back to the .dep parent; a generation with no base at all is named.
# timeout: 400
source "$BFS_ROOT/tests/lib/common.sh"

MK=$BFS_BIN/tools/mkbucket
RT=$BFS_BIN/tools/restoretool
W=$TEST_TMP
sha() { sqlite3 "$1" .sha3sum; }
field() { sed -n "s/^$2: //p" "$1"; }

for i in 1 2 3 4; do
    echo "BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) INSERT INTO t(v) SELECT 'f$i-' || x || hex(randomblob(100)) FROM c; COMMIT;" >"$W/s$i.sql"
done

# make_gen COMP [SQL]: fresh bucket with one generation (snapshot + 4 batches), SQL run on the
# database before the snapshot; sets B, G, STATE
make_gen() {
    local comp=$1
    rm -rf "$W/src.db"* "$W/st"
    mkdir -p "$W/st"
    sqlite3 "$W/src.db" "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('seed'); ${2:-}" >/dev/null
    cp "$W/src.db" "$W/st/state-0.db"
    B=$(new_bucket)
    G=$("$MK" -b "$B" -n db -D "$W/src.db" -c "$comp" --ts 1700000000 --ts-step 10 --state-dir "$W/st" "$W/s1.sql" "$W/s2.sql" "$W/s3.sql" "$W/s4.sql" 2>/dev/null)
}
batch_key() { # batch_key N -> key of the Nth batch
    awss3 s3api list-objects --bucket "$B" --prefix "db-$G/0" --query 'Contents[].Key' --output text | tr '\t' '\n' | sed -n "${1}p"
}
mutate() { # mutate KEY PYTHON_EXPR_ON_data
    awss3 s3 cp "s3://$B/$1" "$W/obj" >/dev/null
    python3 -c "import sys; data = bytearray(open(sys.argv[1],'rb').read()); data = $2; open(sys.argv[1],'wb').write(bytes(data))" "$W/obj"
    awss3 s3 cp "$W/obj" "s3://$B/$1" >/dev/null
}
expect_partial() { # LABEL WANT_STATE KEY_SUBSTRING REASON_SUBSTRING
    rm -f "$W/out.db"
    "$RT" -b "$B" -n db -o "$W/out.db" >"$W/out.txt" 2>"$W/err.txt" || fail "$1: default restore failed: $(cat "$W/err.txt")"
    [[ $(field "$W/out.txt" partial) == 1 ]] || fail "$1: not marked partial: $(cat "$W/out.txt")"
    local reason
    reason=$(field "$W/out.txt" reason)
    [[ $reason == *"$3"* && $reason == *"$4"* ]] || fail "$1: reason '$reason' should name '$3' and say '$4'"
    [[ $(sha "$W/out.db") == "$(sha "$W/st/state-$2.db")" ]] || fail "$1: content is not state $2"
    [[ $(sqlite3 "$W/out.db" 'PRAGMA integrity_check') == ok ]] || fail "$1: integrity"
    # strict: failure naming the key, target untouched
    echo keep >"$W/strict.db"
    if "$RT" -b "$B" -n db -o "$W/strict.db" --strict >/dev/null 2>"$W/err.txt"; then fail "$1: strict restore succeeded"; fi
    grep -q -- "$3" "$W/err.txt" || fail "$1: strict error should name $3: $(cat "$W/err.txt")"
    [[ $(cat "$W/strict.db") == keep ]] || fail "$1: strict failure touched the target"
    [[ -z $(find "$W" -name '.*.restore-*') ]] || fail "$1: temp files left behind"
    note "$1: $reason"
}

# flipped bit in a raw batch -> checksum mismatch in batch 3: state after batch 2
make_gen raw
k=$(batch_key 3)
mutate "$k" 'data[:5000] + bytes([data[5000] ^ 0x20]) + data[5001:]'
expect_partial "flipped bit" 2 "$k" "checksum mismatch"

# flipped bit in a zstd batch -> bad compression or checksum; either way partial at batch 2
make_gen zstd
k=$(batch_key 3)
mutate "$k" 'data[:len(data)//2] + bytes([data[len(data)//2] ^ 0x01]) + data[len(data)//2+1:]'
expect_partial "flipped bit (zstd)" 2 "$k" ""

# truncated batch (zstd stream cut) -> partial at batch 1
make_gen zstd
k=$(batch_key 2)
mutate "$k" 'data[:len(data) - 100]'
expect_partial "truncated batch" 1 "$k" "truncated"

# truncated raw batch (cut inside a frame)
make_gen raw
k=$(batch_key 4)
mutate "$k" 'data[:len(data) - 1000]'
expect_partial "truncated raw batch" 3 "$k" "truncated body"

# missing batch -> stops at the gap
make_gen gz
k=$(batch_key 3)
awss3 s3 rm "s3://$B/$k" >/dev/null
expect_partial "missing batch" 2 "db-$G/" "missing batch"

# short .meta -> the generation's WAL cannot be verified: snapshot only
make_gen zstd
mutate "db-$G/.meta" 'data[:11]'
expect_partial "short .meta" 0 "db-$G/.meta" "11 bytes"

# corrupt snapshot with a .dep parent -> restored through the parent
make_gen zstd
G1=$G
sqlite3 "$W/src.db" "SELECT count(*) FROM t" >/dev/null
G2=$("$MK" -b "$B" -n db -D "$W/src.db" -c zstd --parent "$G1" --created $(($(date +%s) + 60)) --ts 1700001000 "$W/s1.sql" 2>/dev/null)
want=$(sha "$W/src.db")
mutate "db-$G2/db.zstd" 'data[:100]'
"$RT" -b "$B" -n db -o "$W/fb.db" >"$W/fb.txt" || fail "fallback restore failed"
[[ $(field "$W/fb.txt" snapshot) == *"$G1/db.zstd" ]] || fail "should fall back to the parent snapshot: $(cat "$W/fb.txt")"
[[ $(sha "$W/fb.db") == "$want" ]] || fail "fallback content differs"
if "$RT" -b "$B" -n db -o "$W/fb2.db" --strict 2>"$W/err.txt"; then fail "strict with corrupt snapshot succeeded"; fi
grep -q "$G2/db.zstd" "$W/err.txt" || fail "strict snapshot error: $(cat "$W/err.txt")"

# .dep cycle and missing parent are errors
make_gen zstd
python3 -c "import sys,uuid; open(sys.argv[1],'wb').write(uuid.UUID(sys.argv[2]).bytes)" "$W/dep" "$G"
awss3 s3 rm "s3://$B/db-$G/db.zstd" >/dev/null
awss3 s3 cp "$W/dep" "s3://$B/db-$G/.dep" >/dev/null
if "$RT" -b "$B" -n db -o "$W/c.db" 2>"$W/err.txt"; then fail "cycle restore succeeded"; fi
grep -q "cycle" "$W/err.txt" || fail "cycle msg: $(cat "$W/err.txt")"
python3 -c "import sys,uuid; open(sys.argv[1],'wb').write(uuid.UUID('e4e46038-04e1-7b18-a1f4-d269ac2d19dd').bytes)" "$W/dep"
awss3 s3 cp "$W/dep" "s3://$B/db-$G/.dep" >/dev/null
if "$RT" -b "$B" -n db -o "$W/c.db" 2>"$W/err.txt"; then fail "missing-parent restore succeeded"; fi
grep -q "parent generation e4e46038-04e1-7b18-a1f4-d269ac2d19dd" "$W/err.txt" || fail "parent msg: $(cat "$W/err.txt")"

# a generation whose snapshot never made it (the replicator abandons an unfinished one when a
# newer generation needs its own): no snapshot, no .dep, and a WAL that does not hold every
# page (table u is only in the snapshot) -> a clear "no base" error, not a failed integrity_check
make_gen zstd "CREATE TABLE u(v BLOB); INSERT INTO u SELECT randomblob(300) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200) SELECT x FROM c);"
awss3 s3 rm "s3://$B/db-$G/db.zstd" >/dev/null
if LIBSQL_BOTTOMLESS_BUCKET=$B "$BFS_BIN/bottomless-cli" -d db restore -o "$W/nb.db" >/dev/null 2>"$W/err.txt"; then
    fail "restore of a generation without a base succeeded"
fi
grep -q "generation $G has no base" "$W/err.txt" || fail "no-base msg: $(cat "$W/err.txt")"
grep -q "never writes page [0-9]* of the [0-9]*-page database" "$W/err.txt" || fail "no-base msg should name the page: $(cat "$W/err.txt")"
grep -q "hint: .*-g GEN" "$W/err.txt" || fail "no-base hint: $(cat "$W/err.txt")"
[[ ! -e $W/nb.db ]] || fail "no-base restore created the target"
[[ -z $(find "$W" -name '.*.restore-*') ]] || fail "no-base: temp files left behind"
note "no base: $(cat "$W/err.txt")"
note "corruption outcomes ok"
