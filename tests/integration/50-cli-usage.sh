#!/usr/bin/env bash
# 50-cli-usage: bottomless-cli usage errors exit 2 with a message and a hint; --help on every
# command and `help CMD` exit 0; --version; wrong credentials, an unreachable endpoint and a
# missing bucket fail (exit 1) with "bottomless-cli: error:" naming the cause plus a hint.
# timeout: 120
source "$BFS_ROOT/tests/lib/common.sh"

CLI=$BFS_BIN/bottomless-cli
GEN=e4e46038-04e1-7b18-a1f4-d269ac2d19dd

# expect RC PATTERN CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN
# (an extended regexp)
expect() {
    local want=$1 pattern=$2 rc=0 out
    shift 2
    out=$("$@" 2>&1) || rc=$?
    [[ $rc == "$want" ]] || fail "exit $rc (want $want) from: $* -- output: $out"
    # one line, so that a pattern can span the error and the hint
    grep -Eq -- "$pattern" <<<"${out//$'\n'/ }" || fail "output of '$*' lacks /$pattern/: $out"
}

bucket=$(new_bucket)
export LIBSQL_BOTTOMLESS_BUCKET=$bucket

# --- help and version ---
expect 0 '^bottomless-cli [0-9]+\.[0-9]+' "$CLI" --version
expect 0 'usage: bottomless-cli' "$CLI" --help
for cmd in ls restore verify rm snapshot; do
    expect 0 "usage: bottomless-cli.* $cmd" "$CLI" "$cmd" --help
    expect 0 "usage: bottomless-cli.* $cmd" "$CLI" help "$cmd"
    expect 0 "usage: bottomless-cli.* $cmd" "$CLI" -d x "$cmd" -h
done
# --help needs no credentials or server
expect 0 'usage: bottomless-cli.* ls' env -u LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID \
    -u AWS_ACCESS_KEY_ID "$CLI" -e http://127.0.0.1:1 ls --help

# --- usage errors: exit 2, "error:" and a hint ---
expect 2 "error: no command given" "$CLI"
expect 2 "error: unknown command 'frobnicate'.*hint: see 'bottomless-cli --help'" \
    "$CLI" frobnicate
expect 2 "error: unknown global option" "$CLI" --frob ls
expect 2 "error: option '--endpoint' needs a value" "$CLI" --endpoint
expect 2 "error: unknown option '--bogus' for ls.*hint: see 'bottomless-cli ls --help'" \
    "$CLI" ls --bogus
expect 2 "unexpected argument 'extra'" "$CLI" -d db ls extra
expect 2 "-l/--limit needs a non-negative number" "$CLI" -d db ls -l many
expect 2 "is not a generation id" "$CLI" -d db ls -g "${GEN^^}"
expect 2 "is not a generation id" "$CLI" -d db restore -g 1234
expect 2 "--older-than '2023-13-01' is not a UTC date" "$CLI" -d db ls --older-than 2023-13-01
expect 2 "--newer-than '2023-02-30' is not a UTC date" "$CLI" -d db ls --newer-than 2023-02-30
expect 2 "-u/--utc-time 'yesterday' is not a UTC date" "$CLI" -d db restore -u yesterday
expect 2 "-g and -u are mutually exclusive" "$CLI" -d db restore -g $GEN -u 2024-01-01
expect 2 "-g and -u are mutually exclusive" "$CLI" -d db verify -g $GEN -u 2024-01-01
expect 2 "'restore' needs a database name.*hint: pass the database with -d" "$CLI" restore
expect 2 "'verify' needs a database name" "$CLI" verify
expect 2 "'rm' needs a database name" "$CLI" rm -g $GEN
expect 2 "'snapshot' needs a database name" "$CLI" snapshot
expect 2 "rm needs exactly one of -g GEN or --older-than DATE" "$CLI" -d db rm
expect 2 "rm needs exactly one of" "$CLI" -d db rm -g $GEN --older-than 2024-01-01
expect 2 "-c/--compression 'lz4'" "$CLI" -d db snapshot -c lz4
expect 2 "unknown command 'nope'" "$CLI" help nope
expect 2 "database path '/abs/x.db' cannot be mapped" "$CLI" -d /abs/x.db ls
expect 2 "database path 'a/../b' cannot be mapped" "$CLI" -d a/../b ls
# a hostile database name never becomes a path outside the current directory
expect 2 "does not give a safe local file name.*hint: name the output file with -o" \
    "$CLI" -d .. restore
# accepted date spellings (no usage error: the database simply has no generations)
for d in 2024-01-02 2024-01-02T03:04:05 2024-01-02T03:04:05Z 2024-01-02T03:04:05.123Z \
    2024-01-02T03:04:05+00:00; do
    expect 0 "No generations found" "$CLI" -d db ls --older-than "$d"
done

# --- S3 failures: exit 1 with the cause and a hint ---
expect 1 "error: .*(SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|403).*hint: .*LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY" \
    env LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=wrong-secret "$CLI" -d db ls
expect 1 "error: .*(InvalidAccessKeyId|AccessDenied|403|SignatureDoesNotMatch).*hint: .*LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID" \
    env LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=nobody:nobody "$CLI" ls
expect 1 "error: .*credentials.*hint: set LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID" \
    env -u LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID -u LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY \
    -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE HOME="$TEST_TMP" \
    "$CLI" -d db ls
# an unreachable endpoint: a port nobody listens on (bound and closed right away)
dead_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s)
expect 1 "error: .*127\.0\.0\.1:$dead_port.*hint: .*-e/--endpoint" \
    env LIBSQL_BOTTOMLESS_S3_MAX_RETRIES=1 "$CLI" -e "http://127.0.0.1:$dead_port" -d db ls
(($(date +%s) - start < 30)) || fail "unreachable endpoint took more than 30 s to report"
expect 1 "error: .*hint: bucket 'bfs-no-such-bucket-$$' does not exist.*-b/--bucket" \
    "$CLI" -b "bfs-no-such-bucket-$$" -d db ls
# restore of a database without generations names it
expect 1 "error: .*no generation.*db-without-gens|error: .*db-without-gens" \
    "$CLI" -d db-without-gens restore -o "$TEST_TMP/out.db"
[[ ! -e $TEST_TMP/out.db ]] || fail "failed restore left $TEST_TMP/out.db"
note "ok"
