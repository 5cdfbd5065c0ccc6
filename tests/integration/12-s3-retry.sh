#!/usr/bin/env bash
# 12-s3-retry: the S3 client through tests/lib/faultproxy.py. Transient faults (503, 500,
# SlowDown, 429, connection reset, truncated body, delay, hang) are retried and every operation
# still round-trips byte-exact (a truncated GET resumes with a Range and delivers each byte
# once); 4xx are not retried; after the retry budget the call fails cleanly with EAGAIN and the
# attempt count, and a failed upload never leaves a partial object.
# timeout: 600
# serial: its faults include delays and hangs with timing expectations
source "$BFS_ROOT/tests/lib/common.sh"

S3CHECK=$BFS_BIN/tools/s3check
B=$(new_bucket)
T=$TEST_TMP
MODE=$T/mode
echo ok >"$MODE"
URL=$(faultproxy_start "$MODE")
s3c() { "$S3CHECK" --bucket "$B" --endpoint "$URL" --backoff-ms 20 --backoff-max-ms 200 "$@"; }
setmode() { echo "$1" >"$MODE"; }
stat_of() { sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p" "$2"; }

head -c 700001 /dev/urandom >"$T/small.bin"
head -c $((20 * 1024 * 1024 + 1)) /dev/urandom >"$T/big.bin"
s3c put base/small.bin "$T/small.bin"
s3c putfd base/big.bin "$T/big.bin"

# --- transient faults: every operation succeeds ---------------------------------------------------
for mode in "503 2" "500 2" "slowdown 2" "429 2" "reset 2" "truncate 2" "delay 1500 2"; do
    tag=${mode// /-}
    want_retries=${mode##* }
    [[ $mode == delay* ]] && want_retries=0
    for op in put get stream getrange head ls rmmany; do
        setmode "$mode"
        case $op in
            put) s3c --stats put "t/$tag" "$T/small.bin" 2>"$T/err" ;;
            get) s3c --stats get base/small.bin "$T/out" 2>"$T/err" && cmp "$T/small.bin" "$T/out" ;;
            stream) s3c --stats stream base/small.bin "$T/out" 2>"$T/err" >/dev/null &&
                cmp "$T/small.bin" "$T/out" ;;
            getrange) s3c --stats getrange base/small.bin 100 200000 "$T/out" 2>"$T/err" &&
                cmp <(tail -c +101 "$T/small.bin" | head -c 200000) "$T/out" ;;
            head) s3c --stats head base/small.bin 2>"$T/err" >"$T/out" &&
                grep -q "^size=700001 " "$T/out" ;;
            ls) s3c --stats ls --prefix base/ 2>"$T/err" >"$T/out" && grep -q '^pages 1$' "$T/out" ;;
            rmmany) s3c --stats rmmany "t/none-$tag" 2>"$T/err" ;;
        esac || fail "$op under '$mode': $(cat "$T/err")"
        got=$(stat_of retries "$T/err")
        [[ $got == "$want_retries" ]] || fail "$op under '$mode': $got retries, want $want_retries"
        if ((want_retries > 0)); then
            grep -q "warn  s3: retry op=.* attempt=1/6" "$T/err" || fail "$op '$mode': no WARN retry log"
        fi
    done
    s3c get "t/$tag" "$T/out" && cmp "$T/small.bin" "$T/out" || fail "object put under '$mode' differs"
    note "'$mode' ok"
done
# a truncated GET resumed with a Range: the proxy answered 206 to the retries
grep -q "GET /$B/base/small.bin fault=truncate.* -> 200" "$MODE.log" || fail "no truncated 200"
grep -q "GET /$B/base/small.bin fault=ok -> 206" "$MODE.log" || fail "no resumed 206 after truncation"

# --- big objects: multipart upload and parallel ranged GET through faults -------------------------
for mode in "503 3" "reset 2" "truncate 3"; do
    setmode "$mode"
    s3c --stats putfd "t/big-${mode// /-}" "$T/big.bin" 2>"$T/err" || fail "putfd '$mode': $(cat "$T/err")"
    [[ $(stat_of retries "$T/err") == "${mode##* }" ]] || fail "putfd '$mode': $(cat "$T/err")"
    setmode "$mode"
    s3c --stats getfd "t/big-${mode// /-}" "$T/big.out" 2>"$T/err" >/dev/null ||
        fail "getfd '$mode': $(cat "$T/err")"
    cmp "$T/big.bin" "$T/big.out" || fail "getfd under '$mode' differs"
done
[[ $(s3c head "t/big-503-3") == *etag=*-3\ * ]] || fail "multipart object under faults"
note "multipart and parallel GET under faults ok"

# --- hang: the stalled transfer times out and is retried ----------------------------------------
setmode "hang 1"
start=$(date +%s)
s3c --stats --low-speed-s 2 get base/small.bin "$T/out" 2>"$T/err" || fail "hang 1: $(cat "$T/err")"
cmp "$T/small.bin" "$T/out" || fail "GET after a hang differs"
(($(date +%s) - start < 20)) || fail "hang 1 took $(($(date +%s) - start)) s"

# --- 4xx are not retried --------------------------------------------------------------------------
setmode "404 1"
if s3c --stats get base/small.bin "$T/out" 2>"$T/err"; then fail "injected 404 succeeded"; fi
grep -q "ENOENT: GET $B/base/small.bin: 404 NoSuchKey" "$T/err" || fail "404: $(cat "$T/err")"
[[ $(stat_of retries "$T/err") == 0 ]] || fail "a 404 was retried"
setmode "400 1"
if s3c --stats put t/x "$T/small.bin" 2>"$T/err"; then fail "injected 400 succeeded"; fi
grep -q "EINVAL: PUT $B/t/x: 400 BadRequest" "$T/err" || fail "400: $(cat "$T/err")"
[[ $(stat_of retries "$T/err") == 0 ]] || fail "a 400 was retried"

# --- the retry budget: EAGAIN with the attempt count, no partial object ----------------------------
head -c 500000 /dev/urandom >"$T/new.bin"
for mode in 503 slowdown reset truncate "hang"; do
    setmode "$mode"
    start=$(date +%s)
    if s3c --attempts 3 --low-speed-s 1 put base/small.bin "$T/new.bin" 2>"$T/err"; then
        fail "PUT under permanent '$mode' succeeded"
    fi
    grep -q "s3check: EAGAIN: PUT $B/base/small.bin: .* after 3 attempts\$" "$T/err" ||
        fail "PUT '$mode': $(tail -1 "$T/err")"
    if s3c --attempts 3 --low-speed-s 1 get base/small.bin "$T/out" 2>"$T/err"; then
        fail "GET under permanent '$mode' succeeded"
    fi
    grep -q "s3check: EAGAIN: GET $B/base/small.bin: .* after 3 attempts\$" "$T/err" ||
        fail "GET '$mode': $(tail -1 "$T/err")"
    (($(date +%s) - start < 60)) || fail "'$mode' budget took too long"
    setmode ok
    # the stored object is whole: the old bytes, or (truncate cuts only the response) the new
    s3c get base/small.bin "$T/out" || fail "GET after '$mode'"
    cmp -s "$T/out" "$T/small.bin" || cmp -s "$T/out" "$T/new.bin" ||
        fail "object is neither old nor new after failed PUTs under '$mode'"
    cp "$T/out" "$T/small.bin"
done
grep -q "ServiceUnavailable" <(setmode 503; s3c --attempts 2 head base/small.bin 2>&1 || true) ||
    fail "HEAD under 503 does not name the status"
setmode ok
echo "s3 retry ok"
