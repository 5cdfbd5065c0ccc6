#!/usr/bin/env bash
# 75-rel-bad-config: wrong credentials, a missing bucket, an unreachable endpoint, an https
# endpoint with a self-signed certificate (bad CA) and a clock 2 hours off (faketime): the
# mount and the CLI each fail fast (< 45 s, nothing mounted) with a message naming the cause.
# timeout: 600
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket
B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
sqlite3 "$B/app.db" "pragma journal_mode=wal; create table t(x); insert into t values (1);" >/dev/null

# a TLS server on loopback with a self-signed certificate
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 1 \
    -keyout "$TEST_TMP/key.pem" -out "$TEST_TMP/cert.pem" >/dev/null 2>&1 || fail "openssl"
"$PY" - "$TEST_TMP/cert.pem" "$TEST_TMP/key.pem" "$TEST_TMP/tls.port" <<'EOF' &
import http.server, ssl, sys
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(sys.argv[3], "w").write(str(srv.server_address[1]))
srv.serve_forever()
EOF
on_exit _bfs_stop_pid $!
wait_until 20 test -s "$TEST_TMP/tls.port"
TLS=https://127.0.0.1:$(cat "$TEST_TMP/tls.port")
# an unused loopback port: nothing listens there
DEAD=http://127.0.0.1:$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# expect_fail LABEL REGEX CMD...: CMD fails within 45 s and its output matches REGEX
expect_fail() {
    local label=$1 re=$2 rc=0 t0 dt
    shift 2
    t0=$(date +%s)
    timeout 90 "$@" >"$TEST_TMP/out" 2>&1 </dev/null || rc=$?
    dt=$(($(date +%s) - t0))
    ((rc != 0)) || fail "$label: succeeded"
    ((rc != 124)) || fail "$label: hung"
    ((rc < 128)) || { cat "$TEST_TMP/out" >&2; fail "$label: crashed ($rc)"; }
    ((dt < 45)) || fail "$label: took ${dt}s (not fast)"
    grep -qiE "$re" "$TEST_TMP/out" || { cat "$TEST_TMP/out" >&2; fail "$label: message does not name the cause (/$re/)"; }
    note "$label (${dt}s): $(grep -m1 -iE "$re" "$TEST_TMP/out" | cut -c1-220)"
    if fs_is_mounted "$M"; then
        fusermount3 -u -z "$M" || true
        fail "$label: left a mount behind"
    fi
}
FS=("$BFS_BIN/bottomlessfs" -f)
CLI=("$BFS_BIN/bottomless-cli" -b "$BUCKET")

expect_fail "mount, wrong secret" 'AccessDenied|SignatureDoesNotMatch|credential|secret' \
    env LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=wrong "${FS[@]}" "$B" "$M"
expect_fail "cli, wrong secret" 'AccessDenied|SignatureDoesNotMatch|credential|secret' \
    env LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=wrong "${CLI[@]}" -e "$BFS_S3_ENDPOINT" ls
expect_fail "mount, wrong key id" 'AccessDenied|InvalidAccessKeyId|credential|key' \
    env LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=nobody:none "${FS[@]}" "$B" "$M"
expect_fail "mount, missing bucket" 'NoSuchBucket|does not exist|not found|no such bucket' \
    "${FS[@]}" -o bucket=bfs-no-such-bucket-h9 "$B" "$M"
expect_fail "cli, missing bucket" 'NoSuchBucket|does not exist|not found|no such bucket' \
    "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b bfs-no-such-bucket-h9 ls
# a name the server refuses (400) is about the name, not about reaching the endpoint
expect_fail "mount, invalid bucket name" 'rejected the request for bucket .Bad_Bucket.*bucket name' \
    "${FS[@]}" -o bucket=Bad_Bucket "$B" "$M"
expect_fail "cli, invalid bucket name" 'rejected the request for bucket .Bad_Bucket.*bucket name' \
    "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b Bad_Bucket ls
expect_fail "cli, short bucket name" 'at least 3 characters' \
    "$BFS_BIN/bottomless-cli" -e "$BFS_S3_ENDPOINT" -b ab ls
expect_fail "mount, unreachable endpoint" 'connect|refused|unreachable' \
    "${FS[@]}" -o endpoint="$DEAD" "$B" "$M"
expect_fail "cli, unreachable endpoint" 'connect|refused|unreachable' \
    "${CLI[@]}" -e "$DEAD" ls
expect_fail "mount, self-signed https" 'certificate|SSL|TLS' \
    "${FS[@]}" -o endpoint="$TLS" "$B" "$M"
expect_fail "cli, self-signed https" 'certificate|SSL|TLS' \
    "${CLI[@]}" -e "$TLS" ls
command -v faketime >/dev/null || fail "faketime is missing (make deps installs it)"
# faketime is an LD_PRELOAD library: under the ASan build, ASan must be told not to insist on
# being first in the library list (otherwise the binary aborts before it runs).
FAKE=(env ASAN_OPTIONS=verify_asan_link_order=0 faketime -f -2h)
expect_fail "cli, clock 2 h behind" 'clock' \
    "${FAKE[@]}" "${CLI[@]}" -e "$BFS_S3_ENDPOINT" ls
expect_fail "mount, clock 2 h behind" 'clock' \
    "${FAKE[@]}" "${FS[@]}" "$B" "$M"
# the message must be about the clock, not about an ASan start-up failure
if grep -q 'ASan runtime' "$TEST_TMP/out"; then fail "faketime run did not start: $(cat "$TEST_TMP/out")"; fi
# the backing dir is untouched by the failed mounts (no staging area left behind either)
[[ $(sqlite3 "$B/app.db" 'select x from t') == 1 ]] || fail "backing database changed"
