#!/usr/bin/env bash
# 11-s3-list: ListObjectsV2 and ListObjects v1 over more than 1000 keys with a delimiter, full
# pagination (default and small max-keys), start-after/marker, keys with XML-special and UTF-8
# characters, the same listing through awscli, and DeleteObjects of more than 1000 keys.
# timeout: 900
source "$BFS_ROOT/tests/lib/common.sh"

S3CHECK=$BFS_BIN/tools/s3check
B=$(new_bucket)
s3c() { "$S3CHECK" --bucket "$B" "$@"; }
T=$TEST_TMP
export LC_ALL=C

N=1010
s3c putmany m/k "$N" || fail "putmany"
for d in 1 2 3; do s3c putmany "m/d$d/x" 3; done
special=("m/a&b<c>'\".x" "m/sp ace+x=y" "m/üñí ሴ")
for k in "${special[@]}"; do printf '%s' "$k" >"$T/body" && s3c put "$k" "$T/body"; done
s3c putmany other/k 2

# expected entries under m/ with delimiter "/"
{
    for ((i = 0; i < N; i++)); do printf 'K m/k%05d\n' "$i"; done
    for k in "${special[@]}"; do printf 'K %s\n' "$k"; done
    printf 'P m/d%d/\n' 1 2 3
} | sort >"$T/want"
n_want=$(wc -l <"$T/want")
note "expecting $n_want entries"

entries() { grep -E '^[KP] ' "$1" | sed -E 's/^K (.*) [0-9]+ [0-9a-f-]+$/K \1/' | sort; }

check_listing() { # check_listing NAME WANT_PAGES ARGS...
    local name=$1 pages=$2
    shift 2
    s3c ls "$@" >"$T/$name.out" || fail "ls $*"
    entries "$T/$name.out" >"$T/$name.got"
    diff "$T/want" "$T/$name.got" >"$T/$name.diff" ||
        fail "$name: listing differs: $(head -20 "$T/$name.diff")"
    grep -q "^pages $pages\$" "$T/$name.out" || fail "$name: $(tail -1 "$T/$name.out"), want $pages"
    # keys come in ascending byte order across pages
    grep '^K ' "$T/$name.out" | sed -E 's/^K (.*) [0-9]+ [0-9a-f-]+$/\1/' >"$T/$name.keys"
    sort -c "$T/$name.keys" || fail "$name: keys not in order across pages"
}
check_listing v2 2 --prefix m/ --delimiter /
check_listing v1 2 --v1 --prefix m/ --delimiter /
check_listing v2-small 11 --prefix m/ --delimiter / --max-keys 100
check_listing v1-small 11 --v1 --prefix m/ --delimiter / --max-keys 100
check_listing v1-odd 146 --v1 --prefix m/ --delimiter / --max-keys 7
note "paginated listings ok"

# sizes and ETags are those of the bodies (body = key for putmany)
want_etag=$(printf 'm/k00042' | md5sum | cut -d' ' -f1)
grep -q "^K m/k00042 8 $want_etag\$" "$T/v2.out" || fail "size/etag of m/k00042: $(grep k00042 "$T/v2.out")"

# s3_list_all (callback form), v2 and v1
s3c lsall m/ / >"$T/all2.out" && entries "$T/all2.out" | diff "$T/want" - >/dev/null ||
    fail "lsall v2 differs"
s3c lsall m/ / v1 >"$T/all1.out" && entries "$T/all1.out" | diff "$T/want" - >/dev/null ||
    fail "lsall v1 differs"

# no delimiter: every key below m/, including those in the "directories"
s3c ls --prefix m/ --max-keys 500 >"$T/flat.out"
[[ $(grep -c '^K ' "$T/flat.out") == $((N + 3 + 9)) ]] || fail "flat listing count"
grep -q '^K m/d2/x00001 ' "$T/flat.out" || fail "flat listing lacks m/d2/x00001"

# start-after (v2) and marker (v1)
for v in "" --v1; do
    # shellcheck disable=SC2086
    s3c ls $v --prefix m/k --start-after m/k01005 >"$T/sa.out"
    [[ $(grep '^K ' "$T/sa.out" | cut -d' ' -f2 | tr '\n' ' ') == "m/k01006 m/k01007 m/k01008 m/k01009 " ]] ||
        fail "start-after ($v): $(cat "$T/sa.out")"
done

# an independent client sees the same
awss3 s3api list-objects-v2 --bucket "$B" --prefix m/ --delimiter / --output json >"$T/aws.json"
/usr/bin/python3 - "$T/aws.json" >"$T/aws.got" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for o in d.get("Contents", []):
    print("K " + o["Key"])
for p in d.get("CommonPrefixes", []):
    print("P " + p["Prefix"])
EOF
sort "$T/aws.got" | diff "$T/want" - >"$T/aws.diff" || fail "awscli listing differs: $(head "$T/aws.diff")"
note "awscli agrees"

# DeleteObjects of more than 1000 keys (two batches)
grep '^K ' "$T/flat.out" | sed -E 's/^K (.*) [0-9]+ [0-9a-f-]+$/\1/' >"$T/del.keys"
s3c --stats rmmany - <"$T/del.keys" 2>"$T/del.stats" || fail "rmmany"
grep -q "delete=2 " "$T/del.stats" || fail "expected 2 DeleteObjects requests: $(cat "$T/del.stats")"
s3c ls --prefix m/ >"$T/after.out"
[[ $(cat "$T/after.out") == "pages 1" ]] || fail "keys left after rmmany: $(head "$T/after.out")"
[[ $(s3c ls --prefix other/ | grep -c '^K ') == 2 ]] || fail "rmmany deleted other keys"
echo "s3 list ok"
