#!/usr/bin/env bash
# 00-harness: proves the test harness itself: common.sh helpers (fail, on_exit, wait_until,
# TEST_TMP cleanup), new_bucket, an awscli round trip against Swift's S3 API, an S3 outage
# with swift_stop_proxy/swift_start_proxy, and every fault proxy mode.
# timeout: 300
# serial: it stops and restarts the shared S3 server
source "$BFS_ROOT/tests/lib/common.sh"

# --- common.sh: failures are failures, cleanups run, even from subshells ---------------------
child=$TEST_TMP/child-test.sh
cat >"$child" <<'EOF'
source "$BFS_ROOT/tests/lib/common.sh"
echo "$TEST_TMP" >"$MARK.tmp"
x=$(on_exit touch "$MARK.subshell"; echo registered)
on_exit touch "$MARK.direct"
[[ $x == registered ]] || exit 3
case $MODE in
    fail) fail "deliberate failure" ;;
    wait) wait_until 1 false ;;
    false) false ;;
    pass) exit 0 ;;
esac
EOF
for mode in fail wait false pass; do
    rc=0
    MARK=$TEST_TMP/mark-$mode MODE=$mode bash "$child" >"$TEST_TMP/child-$mode.log" 2>&1 || rc=$?
    if [[ $mode == pass ]]; then
        ((rc == 0)) || fail "child test in mode pass exited $rc"
    else
        ((rc != 0)) || fail "child test in mode $mode did not fail"
    fi
    [[ -e $TEST_TMP/mark-$mode.subshell ]] || fail "on_exit from a subshell did not run ($mode)"
    [[ -e $TEST_TMP/mark-$mode.direct ]] || fail "on_exit did not run ($mode)"
    [[ ! -d $(cat "$TEST_TMP/mark-$mode.tmp") ]] || fail "child TEST_TMP not removed ($mode)"
done
grep -q "FAIL: deliberate failure" "$TEST_TMP/child-fail.log" || fail "fail() message missing"
grep -q "timed out after 1s waiting for: false" "$TEST_TMP/child-wait.log" ||
    fail "wait_until message missing"
note "common.sh helpers ok"

# --- buckets and an awscli round trip ----------------------------------------------------------
b1=$(new_bucket)
b2=$(new_bucket)
for b in "$b1" "$b2"; do
    [[ $b =~ ^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$ ]] || fail "invalid bucket name '$b'"
done
[[ $b1 != "$b2" ]] || fail "new_bucket returned the same name twice"
awss3 s3api head-bucket --bucket "$b1" || fail "bucket $b1 was not created"

head -c 300000 /dev/urandom >"$TEST_TMP/in.bin"
awss3 s3 cp "$TEST_TMP/in.bin" "s3://$b1/dir/obj.bin"
awss3 s3 cp "s3://$b1/dir/obj.bin" "$TEST_TMP/out.bin"
cmp "$TEST_TMP/in.bin" "$TEST_TMP/out.bin" || fail "round trip changed the data"
keys=$(awss3 s3api list-objects-v2 --bucket "$b1" --query 'Contents[].Key' --output text)
[[ $keys == dir/obj.bin ]] || fail "listing shows '$keys'"
[[ -z $(awss3 s3api list-objects-v2 --bucket "$b2" --query 'Contents[].Key' --output text |
    grep -v None) ]] || fail "fresh bucket $b2 is not empty"
if AWS_SECRET_ACCESS_KEY=wrong awss3 s3 ls "s3://$b1" >"$TEST_TMP/bad.log" 2>&1; then
    fail "a wrong secret was accepted: the server does not check signatures"
fi
grep -q SignatureDoesNotMatch "$TEST_TMP/bad.log" || fail "wrong secret: $(cat "$TEST_TMP/bad.log")"
note "awscli round trip ok"

# --- outage --------------------------------------------------------------------------------------
swift_stop_proxy
if awss3 --cli-connect-timeout 2 --cli-read-timeout 2 s3 ls "s3://$b1" >/dev/null 2>&1; then
    fail "S3 still answers after swift_stop_proxy"
fi
swift_start_proxy
awss3 s3 ls "s3://$b1/dir/" | grep -q obj.bin || fail "S3 not back after swift_start_proxy"
note "outage ok"

# --- fault proxy ---------------------------------------------------------------------------------
mode=$TEST_TMP/mode
echo ok >"$mode"
url=$(faultproxy_start "$mode")
[[ $url =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "faultproxy_start printed '$url'"
# awscli through the proxy: SigV4 stays valid, and an injected 503 reaches the client
AWS_MAX_ATTEMPTS=1 /usr/bin/aws --endpoint-url "$url" s3 cp "s3://$b1/dir/obj.bin" \
    "$TEST_TMP/via-proxy.bin" --only-show-errors
cmp "$TEST_TMP/in.bin" "$TEST_TMP/via-proxy.bin" || fail "data changed through the proxy"

/usr/bin/python3 - "$url" "$b1" "$mode" <<'EOF'
import sys, threading, time
import boto3, botocore
from botocore.config import Config

url, bucket, mode = sys.argv[1:4]
log = mode + ".log"

def client(read_timeout=10):
    return boto3.client(
        "s3", endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=3, read_timeout=read_timeout,
                      s3={"addressing_style": "path"}))

def set_mode(text):
    with open(mode, "w") as f:
        f.write(text + "\n")

def check(cond, msg):
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        sys.exit(1)

s3 = client()
data = bytes(range(256)) * 4096  # 1 MiB
set_mode("ok")
s3.put_object(Bucket=bucket, Key="p/obj", Body=data)
check(s3.get_object(Bucket=bucket, Key="p/obj")["Body"].read() == data, "ok: GET data differs")

def expect_error(code, status, what):
    try:
        s3.get_object(Bucket=bucket, Key="p/obj")["Body"].read()
    except botocore.exceptions.ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        check(got == (code, status), "%s: got %r, want %r" % (what, got, (code, status)))
        return
    check(False, "%s: request succeeded" % what)

def expect_ok(what):
    check(s3.get_object(Bucket=bucket, Key="p/obj")["Body"].read() == data, what)

set_mode("503 2")
expect_error("ServiceUnavailable", 503, "503 #1")
expect_error("ServiceUnavailable", 503, "503 #2")
expect_ok("after 503 2: third request must pass")
set_mode("500 1")
expect_error("InternalError", 500, "500")
expect_ok("after 500 1")
time.sleep(0.01)
set_mode("500 1")  # rewriting the file restarts the count
expect_error("InternalError", 500, "500 rewritten")
set_mode("slowdown 1")
expect_error("SlowDown", 503, "slowdown")
expect_ok("after slowdown")
set_mode("503")  # no count: every request
for i in range(3):
    expect_error("ServiceUnavailable", 503, "503 unlimited #%d" % i)

set_mode("reset 1")
try:
    s3.get_object(Bucket=bucket, Key="p/obj")
    check(False, "reset: request succeeded")
except botocore.exceptions.ClientError as e:
    check(False, "reset: got an HTTP answer %r" % e.response["Error"])
except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
    pass
expect_ok("after reset")

set_mode("truncate 1")
try:
    got = s3.get_object(Bucket=bucket, Key="p/obj")["Body"].read()
    check(False, "truncate: got %d bytes without an error" % len(got))
except (botocore.exceptions.BotoCoreError, ConnectionError) as e:
    pass
expect_ok("after truncate")
set_mode("truncate 1")  # empty body (HEAD): the headers are cut
try:
    s3.head_object(Bucket=bucket, Key="p/obj")
    check(False, "truncate HEAD succeeded")
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ConnectionError):
    pass
set_mode("truncate 1")  # an upload's response is cut too
try:
    s3.put_object(Bucket=bucket, Key="p/obj2", Body=b"x" * 1000)
    check(False, "truncate PUT succeeded")
except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ConnectionError):
    pass

set_mode("delay 1500 1")
t0 = time.monotonic()
expect_ok("delay")
t1 = time.monotonic()
check(t1 - t0 >= 1.4, "delay: took only %.2fs" % (t1 - t0))
expect_ok("after delay")
deadline = time.monotonic() + 5  # the proxy logs a request after answering it
while open(log).read().count("fault=ok") < 1 or "fault=delay 1500 (0 left)" not in open(log).read():
    check(time.monotonic() < deadline, "delay not logged")
    time.sleep(0.05)
check(open(log).read().count("fault=delay") == 1, "delay applied to more than 1 request")

# hang: the hung request times out, while other requests keep working meanwhile
set_mode("hang 1")
result = {}
def hung():
    t = time.monotonic()
    try:
        client(read_timeout=8).get_object(Bucket=bucket, Key="p/obj")["Body"].read()
        result["r"] = "answered"
    except botocore.exceptions.ReadTimeoutError:
        result["r"] = "timeout"
    except Exception as e:  # noqa: BLE001
        result["r"] = "error %r" % e
    result["t"] = time.monotonic() - t
th = threading.Thread(target=hung)
th.start()
deadline = time.monotonic() + 10
while "hanging" not in open(log).read():
    check(time.monotonic() < deadline, "hang: the request never reached the proxy")
    time.sleep(0.05)
expect_ok("request during a hang")
check("r" not in result, "hang: another request had to wait until the hung one ended")
th.join(30)
check(result.get("r") == "timeout", "hang: %r" % result)
check(result["t"] >= 7.5, "hang: gave up after %.2fs" % result["t"])

set_mode("bogus mode")
expect_ok("an unknown mode forwards")
deadline = time.monotonic() + 5  # the proxy logs a request after answering it
while "BAD-MODE" not in open(log).read():
    check(time.monotonic() < deadline, "unknown mode not logged")
    time.sleep(0.05)
set_mode("ok")
print("faultproxy modes ok")
EOF

# the request log names the faults that were applied
for f in "503 injected" "500 injected" "reset" "truncated body" "truncated headers" \
    "fault=delay 1500" "hanging" "client gave up"; do
    grep -q -- "$f" "$mode.log" || fail "fault proxy log lacks '$f'"
done
# awscli sees the injected status too (no retries)
echo "503 1" >"$mode"
if AWS_MAX_ATTEMPTS=1 /usr/bin/aws --endpoint-url "$url" s3api head-object --bucket "$b1" \
    --key dir/obj.bin >/dev/null 2>&1; then
    fail "awscli HEAD succeeded through a 503 fault"
fi
note "fault proxy ok"
echo "harness ok"
