#!/usr/bin/env bash
# 30-replicator-engine: the replication engine's S3 unit tests (tests/unit/test_replicator.c:
# real SQLite writes through a VFS shim -> replicator -> Swift -> restore engine -> compare),
# run against the harness's Swift (they skip themselves without LIBSQL_BOTTOMLESS_ENDPOINT).
# BFS_CR_FILTER=GLOB runs only the matching tests (criterion --filter, e.g. "*/wal_restarts*").
source "$BFS_ROOT/tests/lib/common.sh"
bin="$BFS_BIN/tests/test_replicator"
if [[ ! -x $bin ]]; then
    make -C "$BFS_ROOT" --no-print-directory -s "${BFS_BIN#"$BFS_ROOT"/}/tests/test_replicator" \
        $([[ $BFS_BIN == */san ]] && echo SAN=1) >&2 || fail "cannot build $bin"
fi
out="$TEST_TMP/out.txt"
if ! "$bin" --jobs 1 ${BFS_CR_FILTER:+--filter "$BFS_CR_FILTER"} >"$out" 2>&1; then
    grep -vE ' info ' "$out" | tail -40 >&2
    fail "test_replicator failed"
fi
grep -q 'Failing: 0 | Crashing: 0' "$out" || fail "unexpected criterion output: $(tail -1 "$out")"
if grep -q 'Skipping\|skipped' "$out"; then fail "S3 tests were skipped"; fi
note "$(grep Synthesis "$out")"
