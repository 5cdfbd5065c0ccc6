#!/usr/bin/env bash
# 13-s3-credentials: credential resolution end to end against Swift (access key "test:tester"
# contains a colon): LIBSQL_BOTTOMLESS_* before AWS_* before ~/.aws/credentials (AWS_PROFILE),
# LIBSQL_BOTTOMLESS_BUCKET, and a clear error naming the variables when nothing is set.
# timeout: 120
source "$BFS_ROOT/tests/lib/common.sh"

S3CHECK=$BFS_BIN/tools/s3check
B=$(new_bucket)
T=$TEST_TMP
GOOD_ID=$LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID
GOOD_SECRET=$LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY
mkdir -p "$T/home/.aws"
echo "credentials test" >"$T/data"

# run CMD with only the given credential variables (HOME points at an empty test home)
clean() {
    env -u LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID -u LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY \
        -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE -u AWS_SESSION_TOKEN \
        -u LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CONFIG_FILE \
        HOME="$T/home" LIBSQL_BOTTOMLESS_BUCKET="$B" "$@"
}

# nothing set: EINVAL naming the variables
if clean "$S3CHECK" headbucket 2>"$T/err"; then fail "no credentials succeeded"; fi
grep -q "EINVAL: no S3 credentials: set LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID" "$T/err" ||
    fail "no credentials: $(cat "$T/err")"

# LIBSQL_BOTTOMLESS_* wins over AWS_*
clean LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID="$GOOD_ID" LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY="$GOOD_SECRET" \
    AWS_ACCESS_KEY_ID="$GOOD_ID" AWS_SECRET_ACCESS_KEY=wrong "$S3CHECK" put cred/a "$T/data" ||
    fail "LIBSQL_BOTTOMLESS_* credentials were not used first"
if clean LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID="$GOOD_ID" LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=wrong \
    AWS_ACCESS_KEY_ID="$GOOD_ID" AWS_SECRET_ACCESS_KEY="$GOOD_SECRET" \
    "$S3CHECK" put cred/a "$T/data" 2>"$T/err"; then
    fail "AWS_* was used although LIBSQL_BOTTOMLESS_* is set"
fi
grep -q "SignatureDoesNotMatch" "$T/err" || fail "wrong LIBSQL secret: $(cat "$T/err")"

# AWS_* alone
clean AWS_ACCESS_KEY_ID="$GOOD_ID" AWS_SECRET_ACCESS_KEY="$GOOD_SECRET" \
    "$S3CHECK" get cred/a "$T/out" && cmp "$T/data" "$T/out" || fail "AWS_* credentials"

# ~/.aws/credentials with a profile chosen by AWS_PROFILE (the default profile is wrong)
cat >"$T/home/.aws/credentials" <<EOF
[default]
aws_access_key_id = $GOOD_ID
aws_secret_access_key = wrong
[bfs]
aws_access_key_id = $GOOD_ID
aws_secret_access_key = $GOOD_SECRET
EOF
cat >"$T/home/.aws/config" <<EOF
[profile bfs]
region = us-east-1
EOF
clean AWS_PROFILE=bfs "$S3CHECK" get cred/a "$T/out" && cmp "$T/data" "$T/out" ||
    fail "profile bfs from ~/.aws/credentials"
if clean "$S3CHECK" get cred/a "$T/out" 2>"$T/err"; then fail "default profile (wrong) worked"; fi
grep -q "403 SignatureDoesNotMatch" "$T/err" || fail "default profile: $(cat "$T/err")"
if grep -q "wrong\|$GOOD_SECRET" "$T/err"; then fail "a secret appears in the message"; fi
echo "s3 credentials ok"
