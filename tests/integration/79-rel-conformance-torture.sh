#!/usr/bin/env bash
# 79-rel-conformance-torture: filesystem conformance through a replicating mount (issue 5).
# For each mode (default options, then -o writeback), against a fresh bucket on the harness's S3:
#   - fio with --verify=crc32c (verify_fatal): sequential write, random write, random read/write
#     by two jobs at once, and writes through a shared mmap; every job must report error 0 and
#     have written the full size;
#   - stress-ng --verify: hdd (seq and random writes, random reads, fsync), fcntl, lockofd,
#     rename; every stressor must pass (exit 0, no "fail" lines, bogo ops > 0);
#   - SQLite's mptest (built from Debian's sqlite3 sources by bench/speedtest1.sh's fetch) on a
#     database on the mount: multiwrite01 (also in WAL mode, so the replicator sees it),
#     config01, crash01 (and config02, all 3 times over, under BFS_TORTURE=1); each must print
#     "Summary: 0 errors" and exit 0.
# Afterwards the WAL database mptest used is integrity-checked and replication of it drains to
# lag 0, the daemon unmounts cleanly and its log holds no sanitizer report.
# Quick tier (make test): small sizes, 5 s stressors. BFS_TORTURE=1 (make torture): larger fio
# sizes, 60 s stressors, every mptest script run 3 times. If the sqlite3 sources cannot be fetched
# (no network, no deb-src), the test FAILS saying so: it never skips. Sources are cached in
# $BENCH_SRC (default /var/tmp/bfs-src, shared with bench/). A self-test first proves the checks
# catch a flipped byte under fio --verify and a failing mptest script.
# timeout: 1800
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

TORTURE=${BFS_TORTURE:-0}
if [[ $TORTURE == 1 ]]; then
    FIO_SIZE=256M FIO_RAND_SIZE=64M STRESS_T=60 HDD_BYTES=128M MP_REPEAT=3
    MP_SCRIPTS=(multiwrite01 config01 config02 crash01)
else
    FIO_SIZE=24M FIO_RAND_SIZE=8M STRESS_T=5 HDD_BYTES=8M MP_REPEAT=1
    MP_SCRIPTS=(multiwrite01 config01 crash01)
fi

for t in fio stress-ng gcc; do
    command -v "$t" >/dev/null || fail "$t is not installed: run 'make deps' (tests/lib/deps.sh)"
done

# --- mptest: from Debian's sqlite3 sources (shared cache, fetched once) ---------------------
SRC=${BENCH_SRC:-/var/tmp/bfs-src}
if ! bash "$BFS_ROOT/bench/speedtest1.sh" "$SRC" >"$TEST_TMP/fetch.log" 2>&1; then
    cat "$TEST_TMP/fetch.log" >&2
    fail "could not fetch/build Debian's sqlite3 sources for mptest into $SRC" \
        "(needs network access to deb.debian.org and root for the deb-src list; see bench/speedtest1.sh)"
fi
tarballs=("$SRC"/sqlite3_*.orig.tar.xz)
tarball=${tarballs[0]}
[[ -f $tarball ]] || fail "no sqlite3_*.orig.tar.xz in $SRC after the fetch"
top=$(tar -tJf "$tarball" | awk -F/ 'NR == 1 { print $1 }')
MPDIR=$SRC/$top/mptest
if [[ ! -f $MPDIR/mptest.c ]]; then
    tar -xJf "$tarball" -C "$SRC" "$top/mptest" || fail "could not extract mptest/ from $tarball"
fi
MPTEST=$TEST_TMP/mptest
gcc -O2 -o "$MPTEST" "$MPDIR/mptest.c" -lsqlite3 2>"$TEST_TMP/mptest-build.log" || {
    cat "$TEST_TMP/mptest-build.log" >&2
    fail "could not build mptest from $MPDIR/mptest.c against the system libsqlite3"
}
for s in "${MP_SCRIPTS[@]}"; do
    [[ -f $MPDIR/$s.test ]] || fail "mptest script $MPDIR/$s.test is missing"
done

# --- fio ---------------------------------------------------------------------------------
# run_fio NAME DIR ARGS...: one fio run (json output), fails unless every job has error 0 and
# wrote what it was asked to.
run_fio() {
    local name=$1 dir=$2
    shift 2
    local out=$TEST_TMP/fio-$name.json rc=0
    mkdir -p "$dir"
    fio --name="$name" --directory="$dir" --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --verify_dump=0 --verify_state_save=0 --ioengine=psync --end_fsync=1 --output-format=json \
        --output="$out" "$@" >"$TEST_TMP/fio-$name.err" 2>&1 || rc=$?
    if ((rc != 0)); then
        cat "$TEST_TMP/fio-$name.err" "$out" >&2 2>/dev/null || true
        fail "fio $name exited with status $rc"
    fi
    fio_check "$out" "$name" || fail "fio $name: verification failed (see above)"
    rm -rf "$dir"
}

# fio_check JSON NAME: true when every job in fio's JSON report has error 0 and read back (verified)
# at least what it wrote.
fio_check() {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    txt = f.read()
# fio may print notes before the JSON document
doc = json.loads(txt[txt.index("{"):])
jobs = doc["jobs"]
assert jobs, "no jobs"
for j in jobs:
    w = j["write"]["io_bytes"]
    r = j["read"]["io_bytes"]
    print("# fio %s/%s: error=%d written=%d read/verified=%d" % (sys.argv[2], j["jobname"],
          j["error"], w, r), file=sys.stderr)
    assert j["error"] == 0, "job %s error %d" % (j["jobname"], j["error"])
    assert w > 0 and r >= w, "job %s: wrote %d, verified %d" % (j["jobname"], w, r)
EOF
}

# --- stress-ng -------------------------------------------------------------------------------
# run_stress NAME DIR ARGS...: one stress-ng run with --verify in DIR; fails unless it exits 0,
# reports no failure and every stressor named in ARGS (--NAME N) did some bogo ops.
run_stress() {
    local name=$1 dir=$2
    shift 2
    local log=$TEST_TMP/stress-$name.log rc=0 a want=()
    for a in "$@"; do
        [[ $a =~ ^--(hdd|fcntl|lockofd|rename)$ ]] && want+=("${BASH_REMATCH[1]}")
    done
    mkdir -p "$dir"
    (cd "$dir" && stress-ng --temp-path "$dir" --verify --timeout "${STRESS_T}s" \
        --metrics-brief "$@") >"$log" 2>&1 || rc=$?
    if ((rc != 0)) || grep -qiE 'fail(ed)?:|verif.*(fail|error|mismatch)|unsuccessful' "$log"; then
        cat "$log" >&2
        fail "stress-ng $name: exit $rc or a failure reported (above)"
    fi
    grep -q 'successful run completed' "$log" || {
        cat "$log" >&2
        fail "stress-ng $name: no 'successful run completed' line"
    }
    local ops summary=""
    for a in "${want[@]}"; do
        ops=$(awk -v s="$a" '$2 == "metrc:" && $4 == s && $5 ~ /^[0-9]+$/ { print $5; exit }' "$log")
        if [[ -z $ops ]] || ((ops == 0)); then
            cat "$log" >&2
            fail "stress-ng $name: stressor $a did no work (bogo ops '${ops}')"
        fi
        summary+=" $a=$ops"
    done
    note "stress-ng $name: passed, bogo ops:$summary"
    rm -rf "$dir"
}

# --- mptest ----------------------------------------------------------------------------------
# run_mptest DB SCRIPT ARGS...: runs from the script's directory (scripts --source each other);
# fails unless it exits 0 with "Summary: 0 errors out of N tests", N > 0.
run_mptest() {
    local db=$1 script=$2
    shift 2
    local log=$TEST_TMP/mptest-$script-$(basename "$db").log rc=0
    (cd "$MPDIR" && "$MPTEST" "$db" --quiet --timeout 30000 "$@" \
        "$script.test") >"$log" 2>&1 || rc=$?
    local summary
    summary=$(grep -E '^Summary: ' "$log" | tail -n 1) || true
    if ! mptest_clean "$rc" "$summary"; then
        tail -n 60 "$log" >&2
        fail "mptest $script on $db: exit $rc, '${summary:-no summary line}'"
    fi
    note "mptest $script $*: $summary"
}

# mptest_clean RC SUMMARY: true when mptest exited 0 and its summary line says 0 errors in N > 0
# tests.
mptest_clean() {
    (($1 == 0)) && [[ $2 =~ ^Summary:\ 0\ errors\ out\ of\ ([0-9]+)\ tests ]] &&
        ((BASH_REMATCH[1] > 0))
}

# The checks can fail: a corrupted block must fail fio's verify, a wrong --match must count as
# an mptest error (on local disk, before anything is mounted).
selftest_checks() {
    local f=$TEST_TMP/neg.dat out=$TEST_TMP/neg.json rc=0 summary
    fio --name=neg --filename="$f" --rw=write --bs=4k --size=1M --verify=crc32c --do_verify=0 --verify_state_save=0 \
        --output-format=json --output="$out" >/dev/null 2>&1 || fail "selftest: fio write"
    fio_check "$out" neg-write 2>/dev/null && fail "selftest: fio_check passed a job that verified nothing"
    printf 'X' | dd of="$f" bs=1 seek=5000 conv=notrunc status=none
    fio --name=neg --filename="$f" --rw=write --bs=4k --size=1M --verify=crc32c --verify_only --verify_state_save=0 \
        --verify_fatal=1 --verify_dump=0 --output-format=json --output="$out" >/dev/null 2>&1 || rc=$?
    ((rc != 0)) || fail "selftest: fio --verify_only did not notice a flipped byte"
    fio_check "$out" neg-verify 2>/dev/null && fail "selftest: fio_check passed a failed verify"
    printf -- '--task 1\nSELECT 1;\n--match 2\n--end\n--wait all\nSELECT 1;\n--match 3\n' \
        >"$TEST_TMP/neg.test"
    rc=0
    "$MPTEST" "$TEST_TMP/neg.db" --quiet "$TEST_TMP/neg.test" >"$TEST_TMP/neg.log" 2>&1 || rc=$?
    summary=$(grep -E '^Summary: ' "$TEST_TMP/neg.log" | tail -n 1) || true
    [[ $summary == "Summary: 2 errors out of 2 tests" ]] ||
        fail "selftest: mptest with two wrong --match lines said '$summary'"
    mptest_clean "$rc" "$summary" && fail "selftest: mptest_clean passed a run with errors"
    note "selftest: fio and mptest failures are detected"
}

run_mode() {
    local mode=$1
    shift
    local B=$TEST_TMP/$mode/back M=$TEST_TMP/$mode/mnt t0=$SECONDS
    mkdir -p "$B" "$M"
    repl_bucket
    mount_fs "$B" "$M" "$@"
    note "mode $mode: mounted $M (bucket $BUCKET, pid $BFS_FS_PID)"

    # fio: sequential write, random write, two concurrent random read/write jobs, shared mmap
    run_fio seqwrite "$M/fio" --rw=write --bs=128k --size="$FIO_SIZE"
    run_fio randwrite "$M/fio" --rw=randwrite --bs=4k --size="$FIO_RAND_SIZE"
    run_fio randrw "$M/fio" --rw=randrw --rwmixread=30 --bs=8k --size="$FIO_RAND_SIZE" \
        --numjobs=2 --verify_backlog=256
    run_fio mmap "$M/fio" --ioengine=mmap --rw=randwrite --bs=16k --size="$FIO_RAND_SIZE"

    # stress-ng: hdd (write/read with verify, fsync), locks, renames
    # (the lock and rename stressors share a run with random-write hdd workers: all at once)
    run_stress hdd "$M/stress-hdd" --hdd 2 --hdd-bytes "$HDD_BYTES" \
        --hdd-opts wr-seq,rd-rnd,fsync
    run_stress mixed "$M/stress-mixed" --hdd 1 --hdd-bytes "$HDD_BYTES" \
        --hdd-opts wr-rnd,rd-seq,fdatasync --fcntl 2 --lockofd 2 --rename 2

    # mptest: rollback-journal modes as the scripts choose them, then WAL (replicated)
    mkdir -p "$M/mp"
    # (each run starts from a fresh database; config01/02 cannot use mptest's --repeat: their
    # CREATE TABLE fails on the second cycle on any filesystem)
    local s r
    for ((r = 1; r <= MP_REPEAT; r++)); do
        for s in "${MP_SCRIPTS[@]}"; do
            run_mptest "$M/mp/$s.db" "$s"
        done
    done
    run_mptest "$M/mp/wal.db" multiwrite01 --journalmode wal
    [[ $(sqlite3 "$M/mp/wal.db" 'PRAGMA integrity_check') == ok ]] ||
        fail "mode $mode: integrity_check of the mptest WAL database"
    [[ $(sqlite3 "$M/mp/wal.db" 'PRAGMA journal_mode') == wal ]] || fail "mode $mode: wal.db not WAL"
    repl_wait_synced 120 "$M" mp/wal.db

    # nothing left behind by the tools, and a clean unmount
    [[ ! -e $M/fio ]] || fail "mode $mode: fio directory left behind"
    unmount_fs "$M"
    [[ $(sqlite3 "$B/mp/wal.db" 'PRAGMA integrity_check') == ok ]] ||
        fail "mode $mode: backing wal.db integrity after unmount"
    note "mode $mode: passed in $((SECONDS - t0)) s"
}

note "tier: $([[ $TORTURE == 1 ]] && echo torture || echo quick)"
selftest_checks
run_mode default
run_mode writeback -o writeback
echo "ok"
