#!/usr/bin/env bash
# run-unit.sh BIN... - run criterion unit test binaries and sum up their results.
#
# Runs each binary with --jobs 2 (BFS_UNIT_JOBS overrides) under a timeout (BFS_UNIT_TIMEOUT,
# default 600 s), prints PASS/FAIL per binary with its test counts, the output of each failing
# binary, and ends with the line "N passed, N failed" counting tests (from criterion's
# "Synthesis: Tested: X | Passing: Y | Failing: Z | Crashing: W" line). A binary that is
# missing, exits non-zero (e.g. a sanitizer report at exit) or prints no synthesis counts as at
# least one failed test. Exit status 0 only if nothing failed. Logs: build/test-results/unit/.
set -uo pipefail

# Sanitizer settings for SAN=1 builds: leaks inside libcriterion are not ours (tests/lsan.supp).
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${BFS_UNIT_JOBS:-2}
LIMIT=${BFS_UNIT_TIMEOUT:-600}
LOGDIR=${BFS_RESULTS:-$ROOT/build/test-results}/unit
mkdir -p "$LOGDIR"

if (($# == 0)); then
    echo "run-unit.sh: no unit test binaries given"
    echo "0 passed, 0 failed"
    exit 1
fi

passed=0
failed=0
bad_bins=()
for bin in "$@"; do
    name=$(basename "$bin")
    log=$LOGDIR/$name.log
    if [[ ! -x $bin ]]; then
        echo "FAIL $name (not built: $bin)"
        failed=$((failed + 1))
        bad_bins+=("$name")
        continue
    fi
    rc=0
    timeout --kill-after=10 "$LIMIT" "$bin" --jobs "$JOBS" --color=never </dev/null >"$log" 2>&1 ||
        rc=$?
    synth=$(grep -aE 'Synthesis: Tested: [0-9]+' "$log" | tail -n 1)
    if [[ $synth =~ Tested:\ ([0-9]+)\ \|\ Passing:\ ([0-9]+)\ \|\ Failing:\ ([0-9]+)\ \|\ Crashing:\ ([0-9]+) ]]; then
        tested=${BASH_REMATCH[1]}
        ok=${BASH_REMATCH[2]}
        bad=$((tested - ok))
    else
        tested=0 ok=0 bad=0
    fi
    # a non-zero exit with all tests passing (sanitizer, leak, timeout) still fails one
    if ((rc != 0 && bad == 0)); then bad=1; fi
    passed=$((passed + ok))
    failed=$((failed + bad))
    if ((bad == 0)); then
        echo "PASS $name ($ok tests)"
    else
        bad_bins+=("$name")
        why="exit $rc"
        ((rc == 124 || rc == 137)) && why="timeout after ${LIMIT}s"
        if [[ -z $synth ]]; then
            echo "FAIL $name ($why, no criterion summary)"
        else
            echo "FAIL $name ($ok of $tested passed, $why)"
        fi
        echo "---- last 60 lines of $log ----"
        tail -n 60 "$log" | sed 's/^/    /'
        echo "----"
    fi
done

((${#bad_bins[@]} == 0)) || echo "failed: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
((failed == 0))
