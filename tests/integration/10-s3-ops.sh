#!/usr/bin/env bash
# 10-s3-ops: every s3/ operation against Swift's S3 API through tests/tools/s3check, byte-exact:
# bucket head/create/ensure, PUT from memory and from an fd (20 MiB multipart, parallel parts),
# GET whole / ranged / streamed / to an fd (parallel ranged GETs), HEAD, DELETE, DeleteObjects,
# concurrent GETs on one client (thread safety, keep-alive), aborted multipart leaves nothing,
# awscli reads what we wrote and we read what awscli wrote, wrong secret, unreachable endpoint.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

S3CHECK=$BFS_BIN/tools/s3check
[[ -x $S3CHECK ]] || fail "missing $S3CHECK (make tools)"
B=$(new_bucket)
s3c() { "$S3CHECK" --bucket "$B" "$@"; }
T=$TEST_TMP

# --- buckets ------------------------------------------------------------------------------------
s3c headbucket || fail "headbucket of an existing bucket failed"
NB="bfs-s3ops-new-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
if "$S3CHECK" --bucket "$NB" headbucket 2>"$T/nb.err"; then fail "headbucket of a missing bucket"; fi
grep -q "ENOENT: HEAD $NB: 404" "$T/nb.err" || fail "missing bucket message: $(cat "$T/nb.err")"
"$S3CHECK" --bucket "$NB" ensure || fail "ensure did not create $NB"
awss3 s3api head-bucket --bucket "$NB" || fail "awscli does not see bucket $NB"
"$S3CHECK" --bucket "$NB" ensure || fail "ensure of an existing bucket failed"
"$S3CHECK" --bucket "$NB" mkbucket || fail "create of an owned bucket must succeed"
note "buckets ok"

# --- small objects: keys with reserved and UTF-8 characters, empty object -----------------------
head -c 300001 /dev/urandom >"$T/small.bin"
: >"$T/empty.bin"
keys=("db/plain.bin" "db/sp ace+plus=eq&amp%25~.bin" "db/ütf8-ሴ/x.bin" "db/a:b,c;d@e!f'(g)*.bin")
for k in "${keys[@]}"; do
    s3c put "$k" "$T/small.bin" || fail "put '$k'"
    s3c get "$k" "$T/got.bin" || fail "get '$k'"
    cmp "$T/small.bin" "$T/got.bin" || fail "get '$k' differs"
done
s3c put db/empty "$T/empty.bin"
s3c get db/empty "$T/got.bin"
[[ -f $T/got.bin && ! -s $T/got.bin ]] || fail "empty object did not come back empty"
md5=$(md5sum "$T/small.bin" | cut -d' ' -f1)
head_out=$(s3c head db/plain.bin)
[[ $head_out == "size=300001 etag=$md5 "* ]] || fail "head says '$head_out', want md5 $md5"

# ranged GETs: middle, to the end (LEN 0), the last byte
s3c getrange db/plain.bin 1000 5000 "$T/r1"
cmp <(tail -c +1001 "$T/small.bin" | head -c 5000) "$T/r1" || fail "range 1000+5000 differs"
s3c getrange db/plain.bin 299990 0 "$T/r2"
cmp <(tail -c 11 "$T/small.bin") "$T/r2" || fail "range to the end differs"
s3c getrange db/plain.bin 300000 1 "$T/r3"
cmp <(tail -c 1 "$T/small.bin") "$T/r3" || fail "last-byte range differs"

# streamed GET and GET to an fd of a small object
s3c stream "db/sp ace+plus=eq&amp%25~.bin" "$T/st.bin" | grep -q "size=300001" || fail "stream size"
cmp "$T/small.bin" "$T/st.bin" || fail "stream differs"
s3c getfd db/plain.bin "$T/fd.bin" >/dev/null
cmp "$T/small.bin" "$T/fd.bin" || fail "getfd (small) differs"

# missing keys
if s3c get db/missing "$T/x" 2>"$T/miss.err"; then fail "GET of a missing key succeeded"; fi
grep -q "ENOENT: GET $B/db/missing: 404 NoSuchKey" "$T/miss.err" || fail "$(cat "$T/miss.err")"
if s3c head db/missing 2>"$T/miss.err"; then fail "HEAD of a missing key succeeded"; fi
grep -q "ENOENT: HEAD $B/db/missing: 404" "$T/miss.err" || fail "$(cat "$T/miss.err")"
note "small objects ok"

# --- 20 MiB multipart from an fd, parallel ranged GET, awscli interop ---------------------------
head -c $((20 * 1024 * 1024 + 4097)) /dev/urandom >"$T/big.bin"
s3c --stats putfd db/big.bin "$T/big.bin" 2>"$T/put.stats" || fail "putfd 20 MiB"
etag=$(s3c head db/big.bin | sed -n 's/.*etag=\([^ ]*\).*/\1/p')
[[ $etag == *-3 ]] || fail "20 MiB with 8 MiB parts must be a 3-part multipart object, etag $etag"
grep -q "requests=5 put=3 " "$T/put.stats" || fail "expected create + 3 parts + complete: $(cat "$T/put.stats")"
s3c --stats getfd db/big.bin "$T/big.out" 2>"$T/get.stats" | grep -q "size=$((20 * 1024 * 1024 + 4097))" ||
    fail "getfd size"
cmp "$T/big.bin" "$T/big.out" || fail "parallel ranged GET differs"
grep -q "get=3 " "$T/get.stats" || fail "expected 3 ranged GETs: $(cat "$T/get.stats")"
s3c get db/big.bin "$T/big.mem" && cmp "$T/big.bin" "$T/big.mem" || fail "whole GET of big differs"
s3c --parallel 1 getfd db/big.bin "$T/big.one" >/dev/null && cmp "$T/big.bin" "$T/big.one" ||
    fail "single-stream getfd differs"
# a smaller part size and more parallelism: 5 parts
s3c --part-size $((5 * 1024 * 1024)) --threshold $((5 * 1024 * 1024)) --parallel 3 \
    putfd db/big5.bin "$T/big.bin"
[[ $(s3c head db/big5.bin) == *etag=*-5\ * ]] || fail "5 MiB parts: $(s3c head db/big5.bin)"
awss3 s3 cp "s3://$B/db/big5.bin" "$T/big.aws"
cmp "$T/big.bin" "$T/big.aws" || fail "awscli reads our multipart object differently"
awss3 s3 cp "s3://$B/db/sp ace+plus=eq&amp%25~.bin" "$T/small.aws"
cmp "$T/small.bin" "$T/small.aws" || fail "awscli reads our small object differently"
# ... and we read what awscli wrote (awscli multipart for >8 MiB, plain below)
awss3 s3 cp "$T/big.bin" "s3://$B/aws/big.bin"
awss3 s3 cp "$T/small.bin" "s3://$B/aws/ütf8 small.bin"
s3c getfd aws/big.bin "$T/a1" >/dev/null && cmp "$T/big.bin" "$T/a1" || fail "awscli big via getfd"
s3c get "aws/ütf8 small.bin" "$T/a2" && cmp "$T/small.bin" "$T/a2" || fail "awscli small via get"
note "multipart, parallel GET and awscli interop ok"

# --- a failing multipart is aborted: no object, no upload left ----------------------------------
if s3c putfd db/partial.bin "$T/big.bin" $((30 * 1024 * 1024)) 2>"$T/partial.err"; then
    fail "putfd with a short file succeeded"
fi
grep -qE "UPLOAD-PART $B/db/partial.bin: part [34]: read failed" "$T/partial.err" ||
    fail "partial: $(cat "$T/partial.err")"
if s3c head db/partial.bin 2>/dev/null; then fail "an aborted multipart left an object"; fi
uploads=$(awss3 s3api list-multipart-uploads --bucket "$B" --query 'Uploads[].Key' --output text)
[[ -z $uploads || $uploads == None ]] || fail "multipart uploads left: $uploads"
note "multipart abort ok"

# --- concurrency on one client, keep-alive ------------------------------------------------------
s3c --stats concurrent db/plain.bin "$T/small.bin" 8 2>"$T/conc.stats" || fail "concurrent GETs"
grep -q "get=40 " "$T/conc.stats" || fail "concurrent: $(cat "$T/conc.stats")"
connects=$(sed -n 's/.*connects=\([0-9]*\).*/\1/p' "$T/conc.stats")
((connects <= 8)) || fail "40 GETs on 8 threads opened $connects connections (no keep-alive?)"

# --- delete ---------------------------------------------------------------------------------------
s3c rm db/plain.bin
if s3c head db/plain.bin 2>/dev/null; then fail "object still there after rm"; fi
s3c rm db/plain.bin || fail "deleting a missing key must succeed"
s3c rmmany "${keys[@]:1}" db/empty db/never-existed
left=$(s3c ls --prefix db/ | grep -c '^K ' || true)
[[ $left == 2 ]] || fail "after rmmany $left keys remain under db/ (want big.bin, big5.bin)"

# --- failures: wrong secret, unreachable endpoint -------------------------------------------------
for cmd in "get db/big.bin $T/x" "put db/x $T/small.bin" "head db/big.bin" "ls" "headbucket"; do
    # shellcheck disable=SC2086
    if s3c --secret wrong-secret $cmd 2>"$T/sig.err"; then fail "wrong secret accepted: $cmd"; fi
    grep -q "EACCES: .*$B.*: 403 SignatureDoesNotMatch" "$T/sig.err" ||
        fail "wrong secret ($cmd): $(cat "$T/sig.err")"
    if grep -q "wrong-secret\|testing" "$T/sig.err"; then fail "secret in the message"; fi
done
start=$(date +%s%N)
if s3c --endpoint http://127.0.0.1:1 get db/big.bin "$T/x" 2>"$T/unreach.err"; then
    fail "unreachable endpoint succeeded"
fi
ms=$((($(date +%s%N) - start) / 1000000))
grep -q "s3check: EAGAIN: GET $B/db/big.bin: http://127.0.0.1:1: Couldn't connect" "$T/unreach.err" ||
    fail "unreachable: $(cat "$T/unreach.err")"
grep -q "after 6 attempts" "$T/unreach.err" || fail "no attempt count: $(cat "$T/unreach.err")"
((ms < 10000)) || fail "unreachable endpoint took ${ms} ms"
note "failures ok (unreachable endpoint failed in ${ms} ms)"
echo "s3 ops ok"
