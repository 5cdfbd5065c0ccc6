#!/usr/bin/env bash
# 51-cli-ls: `bottomless-cli ls` on a bucket built from a real database (three generations with
# known creation times, a .dep chain, snapshots in zstd and gz, a sibling database whose name
# extends this one): plain listing newest first in bottomless-cli's format, -l, date filters,
# -v details checked against the objects read back with awscli, -g, --json, and without -d the
# list of databases (reading only the tombstones its listing shows).
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GENPY=$BFS_ROOT/tests/integration/59-cli-bucketgen.py
bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket
W=$TEST_TMP/w
mkdir -p "$W" "$TEST_TMP/w2" "$TEST_TMP/w3"

T1=1700000000 # 2023-11-14T22:13:20Z
T2=1700086400 # 2023-11-15T22:13:20Z
T3=1700172800 # 2023-11-16T22:13:20Z
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db app.db --workdir "$W" \
    gen:$T1 "sql:CREATE TABLE t(a INTEGER PRIMARY KEY, b)" \
    "sql:INSERT INTO t(b) SELECT randomblob(500) FROM (SELECT 1 UNION SELECT 2)" \
    ship:$((T1 + 5)) genid:g1 \
    gen:$T2:gz "sql:INSERT INTO t(b) VALUES (randomblob(9000))" ship:$((T2 + 5)):gz \
    "sql:UPDATE t SET b = randomblob(10) WHERE a = 1" ship:$((T2 + 9)) genid:g2 \
    gen:$T3:none "sql:DELETE FROM t WHERE a = 2" ship:$((T3 + 5)):raw genid:g3 ||
    fail "bucketgen failed"
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db app.db-2 --workdir "$TEST_TMP/w2" \
    gen:$((T1 + 100)) "sql:CREATE TABLE x(y)" ship genid:s1 || fail "bucketgen (sibling) failed"
/usr/bin/python3 "$GENPY" --bucket "$bucket" --db 'dir%2Fother.db' --workdir "$TEST_TMP/w3" \
    gen:$T2 "sql:CREATE TABLE x(y)" ship gen:$T3 "sql:INSERT INTO x VALUES(1)" ship genid:o2 ||
    fail "bucketgen (other) failed"
g1=$(cat "$W/g1.gen") g2=$(cat "$W/g2.gen") g3=$(cat "$W/g3.gen")
s1=$(cat "$TEST_TMP/w2/s1.gen") o2=$(cat "$TEST_TMP/w3/o2.gen")

# --- plain listing: newest first, exact bottomless-cli format, no sibling generations ---
out=$("$CLI" -d app.db ls) || fail "ls failed"
want="$g3 (created: 2023-11-16T22:13:20+00:00)
$g2 (created: 2023-11-15T22:13:20+00:00)
$g1 (created: 2023-11-14T22:13:20+00:00)"
[[ $out == "$want" ]] || fail "ls output:
$out
want:
$want"
[[ $("$CLI" -d app.db ls -l 2) == "$(head -2 <<<"$want")" ]] || fail "ls -l 2"
[[ $("$CLI" -d app.db ls -l 0) == "" ]] || fail "ls -l 0 printed something"

# --- date filters: --older-than = created before, --newer-than = created at or after ---
[[ $("$CLI" -d app.db ls --older-than 2023-11-16 | cut -d' ' -f1) == "$g2
$g1" ]] || fail "--older-than 2023-11-16"
[[ $("$CLI" -d app.db ls --newer-than 2023-11-15 | cut -d' ' -f1) == "$g3
$g2" ]] || fail "--newer-than 2023-11-15"
[[ $("$CLI" -d app.db ls --newer-than 2023-11-15T22:13:20Z --older-than 2023-11-15T22:13:21 |
    cut -d' ' -f1) == "$g2" ]] || fail "--newer-than/--older-than with times"
[[ $("$CLI" -d app.db ls --older-than 2023-11-14T22:13:20) == "" ]] ||
    fail "--older-than is not strict"

# --- -v: details match the objects in the bucket ---
out=$("$CLI" -d app.db ls -v) || fail "ls -v failed"
note "ls -v output:"
echo "$out" >&2
grep -qx "Database app.db:" <<<"$out" || fail "no 'Database app.db:' line"
# the block of one generation: from its line to the next blank line
block() { awk -v g="$1" '$1 == g {p = 1} p && /^$/ {exit} p' <<<"$out"; }
meta_hex() { # page size and checksum pair of a generation's .meta, as ls prints them
    awss3 s3api get-object --bucket "$bucket" --key "app.db-$1/.meta" "$TEST_TMP/meta" >/dev/null
    /usr/bin/python3 -c 'import struct,sys; p,a,b=struct.unpack(">III",open(sys.argv[1],"rb").read()); print(p, "%X-%X" % (a,b))' "$TEST_TMP/meta"
}
b3=$(block "$g3") b2=$(block "$g2") b1=$(block "$g1")
read -r ps3 ck3 < <(meta_hex "$g3")
read -r ps2 ck2 < <(meta_hex "$g2")
grep -qxF $'\tcreated at (UTC):     2023-11-16 22:13:20' <<<"$b3" || fail "g3 created at"
grep -qxF $'\tpage size:            '"$ps3" <<<"$b3" || fail "g3 page size (want $ps3)"
grep -qxF $'\tWAL frame checksum:   '"$ck3" <<<"$b3" || fail "g3 checksum (want $ck3)"
grep -qxF $'\tWAL frame checksum:   '"$ck2" <<<"$b2" || fail "g2 checksum (want $ck2)"
grep -qxF $'\tprevious generation:  '"$g2" <<<"$b3" || fail "g3 previous generation"
grep -qxF $'\tprevious generation:  '"$g1" <<<"$b2" || fail "g2 previous generation"
grep -q 'previous generation' <<<"$b1" && fail "g1 has no .dep but shows one"
grep -qxF $'\tno main database snapshot file found' <<<"$b3" || fail "g3 has no snapshot"
grep -qxF $'\tno main database snapshot file found' <<<"$b1" || fail "g1 has no snapshot"
grep -qxF $'\t\tobject:        db.gz' <<<"$b2" || fail "g2 snapshot object"
size=$(awss3 s3api head-object --bucket "$bucket" --key "app.db-$g2/db.gz" --query ContentLength --output text)
grep -qxF $'\t\tobject size:   '"$size" <<<"$b2" || fail "g2 snapshot size (want $size)"
grep -qE $'^\t\tlast modified: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' <<<"$b2" ||
    fail "g2 snapshot last modified"
# consistent WAL frame = last frame of the last batch; change counter from .changecounter
last2=$(awss3 s3 ls "s3://$bucket/app.db-$g2/" | awk '{print $4}' | grep -E '^[0-9]{12}-' | tail -1 | cut -d- -f2)
grep -qxF $'\tconsistent WAL frame: '"$((10#$last2))" <<<"$b2" || fail "g2 consistent frame (want $((10#$last2)))"
awss3 s3api get-object --bucket "$bucket" --key "app.db-$g2/.changecounter" "$TEST_TMP/cc" >/dev/null
cc=$(od -An -tu1 "$TEST_TMP/cc" | awk '{printf "[%s, %s, %s, %s]", $1, $2, $3, $4}')
grep -qxF $'\tchange counter:       '"$cc" <<<"$b2" || fail "g2 change counter (want $cc)"
grep -qxF $'\tchange counter:       [0, 0, 0, 0]' <<<"$b1" || fail "g1 change counter"

# --- -g: one generation ---
out=$("$CLI" -d app.db ls -g "$g2") || fail "ls -g failed"
[[ $(head -1 <<<"$out") == "Generation $g2 for app.db" ]] || fail "ls -g header: $out"
grep -qxF $'\tcreated at:           2023-11-15 22:13:20' <<<"$out" || fail "ls -g created at"
rc=0
err=$("$CLI" -d app.db ls -g "$s1" 2>&1) || rc=$?
[[ $rc == 1 ]] || fail "ls -g of another database's generation: exit $rc"
grep -q "generation $s1 not found for database app.db" <<<"$err" || fail "ls -g message: $err"

# --- --json ---
"$CLI" -d app.db ls --json >"$TEST_TMP/ls.json" || fail "ls --json failed"
"$CLI" -d app.db ls --json -v >"$TEST_TMP/lsv.json" || fail "ls --json -v failed"
/usr/bin/python3 - "$TEST_TMP/ls.json" "$TEST_TMP/lsv.json" "$g1" "$g2" "$g3" "$ck2" <<'EOF' || fail "json check"
import json, sys
plain, verbose = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
g1, g2, g3, ck2 = sys.argv[3:7]
assert [g["generation"] for g in plain] == [g3, g2, g1], plain
assert plain[0]["created"] == "2023-11-16T22:13:20Z" and plain[0]["created_unix"] == 1700172800
v = {g["generation"]: g for g in verbose}
assert v[g2]["snapshot"]["object"] == "db.gz", v[g2]
assert v[g2]["wal_frame_checksum"] == ck2 and v[g2]["previous_generation"] == g1
assert v[g3]["snapshot"] is None and v[g1]["previous_generation"] is None
assert v[g2]["page_size"] == 4096 and v[g2]["wal_batches"] == 2
EOF
[[ $("$CLI" -d nothing-here ls --json | tr -d ' \n') == "[]" ]] || fail "empty --json"
[[ $("$CLI" -d nothing-here ls) == "No generations found" ]] || fail "empty ls"

# --- without -d: the databases with their newest generation ---
out=$("$CLI" ls) || fail "ls without -d failed"
note "databases: $out"
grep -qxF "app.db  newest: $g3 (created: 2023-11-16T22:13:20+00:00), 3 generations" <<<"$out" ||
    fail "app.db line"
grep -qxF "app.db-2  newest: $s1 (created: 2023-11-14T22:15:00+00:00), 1 generation" <<<"$out" ||
    fail "app.db-2 line"
grep -qxF "dir%2Fother.db  newest: $o2 (created: 2023-11-16T22:13:20+00:00), 2 generations" <<<"$out" ||
    fail "dir%2Fother.db line"
[[ $(wc -l <<<"$out") == 3 ]] || fail "ls without -d: expected 3 databases"
"$CLI" ls --json >"$TEST_TMP/dbs.json" || fail "ls --json without -d"
/usr/bin/python3 - "$TEST_TMP/dbs.json" "$g3" <<'EOF' || fail "databases json"
import json, sys
d = {x["database"]: x for x in json.load(open(sys.argv[1]))}
assert set(d) == {"app.db", "app.db-2", "dir%2Fother.db"}, d
assert d["app.db"]["generations"] == 3 and d["app.db"]["newest_generation"] == sys.argv[2]
EOF

# --- a tombstone (bottomless: hides generations created at or before it) is shown ---
/usr/bin/python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack(">q", int(sys.argv[2])))' \
    "$TEST_TMP/tomb" "$T2"
awss3 s3 cp "$TEST_TMP/tomb" "s3://$bucket/app.db.tombstone"
out=$("$CLI" -d app.db ls) || fail "ls with a tombstone"
[[ $out == "$g3 (created: 2023-11-16T22:13:20+00:00)
$g2 (created: 2023-11-15T22:13:20+00:00) [tombstoned]
$g1 (created: 2023-11-14T22:13:20+00:00) [tombstoned]" ]] || fail "tombstone marks: $out"
# the database list reads only the tombstones its one listing shows (it read one per database)
"$CLI" --log-level debug ls >/dev/null 2>"$TEST_TMP/ls.log" || fail "ls with a tombstone"
reads=$(grep -c 'key=[^ ]*\.tombstone ' "$TEST_TMP/ls.log" || true)
[[ $reads == 1 ]] || { cat "$TEST_TMP/ls.log" >&2; fail "ls read $reads tombstones, want 1"; }
note "ok"
