#!/usr/bin/env bash
# bench/rtt.sh - the FUSE round trip of WAL-like write pairs by transport (bench/fuse_rtt.c):
# native writes, then one /dev/fuse reader (bottomlessfs's loop today), one reader pinned per
# CPU, and FUSE over io_uring (one queue per CPU), interleaved over rounds. Prints per mode the
# median microseconds per pair (24 B + 4096 B), its min-max and native/mode.
# As root. FUSE over io_uring needs kernel >= 6.14 with CONFIG_FUSE_IO_URING: the script sets
# /sys/module/fuse/parameters/enable_uring to Y for the run and puts the old value back.
# Environment: BFS_BIN (build dir, default build/), BENCH_DIR (default /var/tmp/bfs-rtt),
# RTT_ROUNDS (default 5), RTT_N (pairs, default 50000), RTT_BACKING=1 (the server pwrites each
# WRITE into a file in BENCH_DIR, as bottomlessfs does, instead of answering at once).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RTT=${BFS_BIN:-$ROOT/build}/bench/fuse_rtt
DIR=${BENCH_DIR:-/var/tmp/bfs-rtt}
ROUNDS=${RTT_ROUNDS:-5}
N=${RTT_N:-50000}
PARAM=/sys/module/fuse/parameters/enable_uring
if [[ ! -x $RTT ]]; then
    echo "rtt.sh: $RTT missing: make bench builds it (or: make build/bench/fuse_rtt)" >&2
    exit 2
fi
((EUID == 0)) || { echo "rtt.sh: run as root (fuse_rtt mounts)" >&2; exit 2; }

MODES=(classic pinned)
OLD_PARAM=
if [[ -w $PARAM ]]; then
    OLD_PARAM=$(cat "$PARAM")
    echo Y >"$PARAM"
    MODES+=(uring)
else
    echo "rtt.sh: this kernel has no FUSE over io_uring ($PARAM): uring left out" >&2
fi
cleanup() {
    set +e
    mountpoint -q "$DIR/mnt" && umount -l "$DIR/mnt"
    [[ -n $OLD_PARAM ]] && echo "$OLD_PARAM" >"$PARAM"
    rm -f "$DIR/native.f" "$DIR/backing.f"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR/mnt"
RES=$DIR/rtt.tsv
: >"$RES"
backing=()
[[ ${RTT_BACKING:-0} == 1 ]] && backing=("$DIR/backing.f")
us() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])["us_per_pair"])' "$1"; }
for ((r = 0; r < ROUNDS; r++)); do
    rm -f "$DIR/native.f"
    j=$("$RTT" "$DIR/native.f" native "$N") # a failed run stops the script (set -e)
    printf 'native\t%s\n' "$(us "$j")" >>"$RES"
    for m in "${MODES[@]}"; do
        j=$("$RTT" "$DIR/mnt" "$m" "$N" "${backing[@]}")
        printf '%s\t%s\n' "$m" "$(us "$j")" >>"$RES"
    done
done

/usr/bin/python3 - "$RES" "$N" "$ROUNDS" "${backing[*]:+backing}" <<'PY'
import statistics, sys
res, n, rounds, backing = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = {}
for line in open(res):
    m, v = line.split()
    runs.setdefault(m, []).append(float(v))
nat = statistics.median(runs["native"])
what = "each WRITE also written to a backing file" if backing else "WRITEs answered at once"
print(f"{n} write pairs (24 B + 4096 B), {rounds} interleaved rounds; {what}")
print(f"{'mode':10} {'us/pair':>8} {'min-max':>15} {'native/mode':>11}")
for m, v in runs.items():
    med = statistics.median(v)
    print(f"{m:10} {med:8.2f} {min(v):7.2f}-{max(v):7.2f} {nat / med:11.3f}")
PY
