#!/usr/bin/env bash
# bench/variants.sh [OPTS...] - compares mount option sets on the insert workload (the one that
# depends most on the FUSE request path), interleaved with native runs, with replication on.
# Each OPTS is a comma-separated -o list ("" = the defaults), e.g.
#   bash bench/variants.sh "" "xattr" "spin_us=30" "spin_us=100"
# An OPTS of the form "@DIR opts" runs DIR/bottomlessfs instead (A/B of two builds, e.g. a
# worktree of the previous commit): bash bench/variants.sh "@/tmp/base/build writeback" "writeback"
# Prints per variant: median tx/s, median of the per-round mount/native ratios, min-max of the
# ratios, FUSE requests per transaction (WRITE/GETXATTR), and the loop's spin hits per tx.
# Environment: BFS_BIN, BENCH_DIR, BENCH_S3_DIR and BENCH_S3_NICE (see run.sh), BENCH_PORT
# (default 18590), VAR_ROUNDS (default 5), VAR_N (transactions, default 20000), VAR_SYNC
# (NORMAL|FULL, default NORMAL).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BFS_BIN:-$ROOT/build}
SB=$BIN/bench/sqlbench
DIR=${BENCH_DIR:-/var/tmp/bfs-variants}
S3DIR=${BENCH_S3_DIR:-$DIR/swift}
PORT=${BENCH_PORT:-18590}
ROUNDS=${VAR_ROUNDS:-5}
N=${VAR_N:-20000}
SYNC=${VAR_SYNC:-NORMAL}
((ROUNDS > 0)) || exit 2
(($# > 0)) || set -- ""

export LIBSQL_BOTTOMLESS_ENDPOINT=http://127.0.0.1:$PORT
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=test:tester
export LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=testing
export LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION=us-east-1
export BOTTOMLESS_LOG=${BOTTOMLESS_LOG:-warn}
unset LIBSQL_BOTTOMLESS_BUCKET

NATIVE=$DIR/native BACKING=$DIR/backing MNT=$DIR/mnt
DAEMON_PID=
NB=0

cleanup() {
    set +e
    if [[ -n $DAEMON_PID ]]; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT"
        wait "$DAEMON_PID"
    fi
    bash "$ROOT/tests/lib/swift.sh" stop "$S3DIR" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
jget() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

mkdir -p "$DIR"
rm -rf "$DIR/bin"
mkdir -p "$DIR/bin/bench" "$DIR/bin/tools"
cp "$BIN/bottomlessfs" "$DIR/bin/"
cp "$SB" "$DIR/bin/bench/"
cp "$BIN/tools/s3check" "$DIR/bin/tools/"
# "@DIR opts" -> the copy of DIR's daemon under $DIR/bin (one directory per build)
alt_copy() { local d=${1%% *}; echo "$DIR/bin/alt-$(md5sum <<<"${d#@}" | cut -c1-8)"; }
for v in "$@"; do
    if [[ $v == @* ]]; then
        a=${v%% *}
        mkdir -p "$(alt_copy "$v")"
        cp "${a#@}/bottomlessfs" "$(alt_copy "$v")/"
    fi
done
BIN=$DIR/bin SB=$DIR/bin/bench/sqlbench
mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u -z "$MNT"
bash "$ROOT/tests/lib/swift.sh" stop "$S3DIR" >/dev/null 2>&1 || true
rm -rf "$S3DIR"
nice -n "${BENCH_S3_NICE:-10}" bash "$ROOT/tests/lib/swift.sh" start "$S3DIR" "$PORT" >/dev/null
RES=$DIR/variants.tsv
: >"$RES"

for ((r = 0; r < ROUNDS; r++)); do
    for ((v = 0; v <= $#; v++)); do
        rm -rf "$NATIVE" "$BACKING"
        mkdir -p "$NATIVE" "$BACKING" "$MNT"
        if ((v == 0)); then
            j=$("$SB" insert "$NATIVE/w.db" "$N" "$SYNC")
            printf 'native\t%s\t%s\n' "$r" "$(jget "$j" tx_per_s)" >>"$RES"
            continue
        fi
        opts=${!v}
        daemon=$BIN/bottomlessfs
        if [[ $opts == @* ]]; then
            daemon=$(alt_copy "$opts")/bottomlessfs
            [[ $opts == *" "* ]] && opts=${opts#* } || opts=
        fi
        NB=$((NB + 1))
        "$BIN/tools/s3check" --bucket "var-$$-$NB" mkbucket >/dev/null
        "$daemon" -f -o "bucket=var-$$-$NB${opts:+,$opts}" "$BACKING" "$MNT" 2>>"$DIR/daemon.log" &
        DAEMON_PID=$!
        wait_for 20 mountpoint -q "$MNT"
        s0=$(cat "$MNT/.bottomless/stats")
        j=$("$SB" insert "$MNT/w.db" "$N" "$SYNC")
        s1=$(cat "$MNT/.bottomless/stats")
        fusermount3 -u "$MNT"
        wait "$DAEMON_PID" || true
        DAEMON_PID=
        printf '%s\t%s\t%s\t%s\t%s\n' "v$v" "$r" "$(jget "$j" tx_per_s)" "$s0" "$s1" >>"$RES"
    done
done

/usr/bin/python3 - "$RES" "$N" "$SYNC" "$@" <<'PY'
import json, statistics, sys
res, n, sync, variants = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
native, runs = {}, {}
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if f[0] == "native":
        native[f[1]] = float(f[2])
    else:
        a, b = json.loads(f[3]), json.loads(f[4])
        d = lambda k: (b["by_op"].get(k, 0) - a["by_op"].get(k, 0)) / n
        runs.setdefault(f[0], []).append(dict(r=f[1], tx=float(f[2]),
            req=(b["requests"] - a["requests"]) / n, w=d("WRITE"), gx=d("GETXATTR"),
            hits=(b["spin_hits"] - a["spin_hits"]) / n))
print(f"{sync} inserts, {int(n)} tx, native median {statistics.median(native.values()):,.0f} tx/s")
print(f"{'options':28} {'tx/s':>8} {'ratio':>6} {'min-max':>11} {'req/tx':>6} {'WRITE':>5} {'GETX':>5} {'spinhit':>7}")
for i, v in enumerate(variants, 1):
    rs = runs.get(f"v{i}", [])
    if not rs:
        continue
    ratios = [x["tx"] / native[x["r"]] for x in rs]
    med = lambda k: statistics.median(x[k] for x in rs)
    print(f"{v or '(defaults)':28} {med('tx'):8,.0f} {statistics.median(ratios):6.2f} "
          f"{min(ratios):5.2f}-{max(ratios):5.2f} {med('req'):6.2f} {med('w'):5.2f} {med('gx'):5.2f} {med('hits'):7.2f}")
PY
