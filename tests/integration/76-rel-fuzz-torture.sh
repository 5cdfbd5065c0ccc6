#!/usr/bin/env bash
# 76-rel-fuzz-torture: the fuzz targets of tests/fuzz/ (WAL decoder, restore batch replay with
# the decompressors, S3 XML parsers).
#   quick tier:   each target's kept corpus (tests/fuzz/corpus/<target>/) is replayed by the
#                 standalone build (under ASan/UBSan in `make test`): no crash, no report.
#   BFS_TORTURE=1: additionally each target runs under libFuzzer (clang -fsanitize=fuzzer,
#                 address,undefined) for BFS_FUZZ_SECS seconds (default 210: 3 targets = 10.5
#                 min), starting from the kept corpus. A crash fails the test; the crashing
#                 input is copied to build/test-results/.../fuzz-crashes/ (add it to the
#                 corpus once fixed, so `make test` keeps replaying it).
# timeout: 1500
source "$BFS_ROOT/tests/lib/common.sh"

CORPUS=$BFS_ROOT/tests/fuzz/corpus
rel=${BFS_BIN#"$BFS_ROOT"/}
targets=() bins=()
for s in "$BFS_ROOT"/tests/fuzz/fuzz_*.c; do
    t=${s##*/}
    targets+=("${t%.c}")
    bins+=("$rel/fuzz/${t%.c}")
done
make -C "$BFS_ROOT" --no-print-directory -s $([[ $BFS_BIN == */san ]] && echo SAN=1) "${bins[@]}" >&2 ||
    fail "cannot build the fuzz targets"
for t in "${targets[@]}"; do
    out=$TEST_TMP/$t.out
    [[ -d $CORPUS/$t ]] || fail "no kept corpus for $t"
    "$BFS_BIN/fuzz/$t" "$CORPUS/$t" >"$out" 2>&1 || { tail -40 "$out" >&2; fail "$t: corpus replay failed"; }
    grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out" && { cat "$out" >&2; fail "$t: sanitizer report"; }
    note "$t: $(tail -1 "$out")"
done

[[ ${BFS_TORTURE:-0} == 1 ]] || exit 0
command -v clang >/dev/null || fail "BFS_TORTURE=1 needs clang for libFuzzer"
SECS=${BFS_FUZZ_SECS:-210}
make -C "$BFS_ROOT" --no-print-directory -s fuzz-lf >&2 || fail "cannot build the libFuzzer targets"
for t in "${targets[@]}"; do
    work=$TEST_TMP/corpus-$t art=$TEST_TMP/art-$t/
    mkdir -p "$work" "$art"
    cp "$CORPUS/$t"/* "$work"/
    rc=0
    "$BFS_ROOT/build/fuzz-lf/$t" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 \
        -max_len=262144 -artifact_prefix="$art" -print_final_stats=1 "$work" \
        >"$TEST_TMP/$t.lf" 2>&1 || rc=$?
    if ((rc != 0)) || compgen -G "$art*" >/dev/null; then
        keep=${BFS_RESULTS_DIR:-$BFS_ROOT/build/test-results}/fuzz-crashes/$t
        mkdir -p "$keep"
        cp "$art"* "$keep"/ 2>/dev/null || true
        grep -A30 -m1 -E 'ERROR|==[0-9]+==' "$TEST_TMP/$t.lf" >&2 || tail -30 "$TEST_TMP/$t.lf" >&2
        fail "$t: libFuzzer found a crash (inputs kept in $keep)"
    fi
    note "$t: ${SECS}s, $(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$TEST_TMP/$t.lf" || true)" \
        "corpus $(ls "$work" | wc -l) inputs"
done
