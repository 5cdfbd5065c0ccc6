#!/usr/bin/env bash
# bench/run.sh - `make bench`: every workload on a native directory and on the mount, in the
# same run and on the same disk; prints a table of absolute figures and mount/native ratios and
# writes the same as JSON (bench/results/latest.json, or $BENCH_OUT).
#
# Environment: BFS_BIN (binaries), BENCH_DIR (work dir, default /var/tmp/bfs-bench: same disk as
# the repository on these machines), BENCH_ROUNDS (interleaved rounds, default 3; medians are
# reported), BENCH_QUICK=1 (smaller sizes, for a smoke run), BENCH_SKIP="restore speedtest ..."
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BFS_BIN:-$ROOT/build}
SB=$BIN/bench/sqlbench
DIR=${BENCH_DIR:-/var/tmp/bfs-bench}
ROUNDS=${BENCH_ROUNDS:-3}
PORT=${BENCH_PORT:-18580}
OUT=${BENCH_OUT:-$ROOT/bench/results/latest.json}
SKIP=" ${BENCH_SKIP:-} "
QUICK=${BENCH_QUICK:-0}
N_INSERT=20000 N_FULL=3000 N_ROWS=100000 N_Q=200000 BULK_MB=200 RESTORE_MB=1024
if [[ $QUICK == 1 ]]; then
    N_INSERT=5000 N_FULL=500 N_ROWS=20000 N_Q=50000 BULK_MB=50 RESTORE_MB=64 ROUNDS=1
fi

export LIBSQL_BOTTOMLESS_ENDPOINT=http://127.0.0.1:$PORT
export LIBSQL_BOTTOMLESS_BUCKET=bench
export LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID=test:tester
export LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY=testing
export LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
export BOTTOMLESS_LOG=${BOTTOMLESS_LOG:-warn}

NATIVE=$DIR/native BACKING=$DIR/backing MNT=$DIR/mnt
DAEMON_PID=
PEAK_RSS_KB=0
RESULTS=$DIR/results.tsv   # name \t native \t mount \t unit \t target-ratio

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
skip() { [[ $SKIP == *" $1 "* ]]; }

cleanup() {
    set +e
    unmount
    [[ -d $DIR/swift/run ]] && bash "$ROOT/tests/lib/swift.sh" stop "$DIR/swift" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for SECS CMD...
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

note_rss() {
    [[ -n $DAEMON_PID ]] || return 0
    local kb
    kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status" 2>/dev/null || echo 0)
    ((kb > PEAK_RSS_KB)) && PEAK_RSS_KB=$kb
    return 0
}

mount_fs() { # mount_fs [-o opts]
    "$BIN/bottomlessfs" -f "$@" "$BACKING" "$MNT" 2>>"$DIR/daemon.log" &
    DAEMON_PID=$!
    wait_for 20 mountpoint -q "$MNT" || die "mount failed (see $DIR/daemon.log)"
}

unmount() {
    if [[ -n $DAEMON_PID ]]; then
        note_rss
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=
    fi
}

lag_zero() {
    /usr/bin/python3 - "$MNT/.bottomless/status" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
sys.exit(0 if all(d.get("lag_s", 1) == 0 for d in st.get("databases", [])) else 1)
PY
}

jget() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

fresh() { rm -rf "$NATIVE" "$BACKING"; mkdir -p "$NATIVE" "$BACKING" "$MNT"; }

# --------------------------------------------------------------------------------------------
[[ -x $SB && -x $BIN/bottomlessfs && -x $BIN/bottomless-cli ]] || die "build first (make bench does)"
mkdir -p "$DIR" "$(dirname "$OUT")"
mountpoint -q "$MNT" 2>/dev/null && fusermount3 -u -z "$MNT"
[[ -d $DIR/swift/run ]] && bash "$ROOT/tests/lib/swift.sh" stop "$DIR/swift" >/dev/null 2>&1 || true
rm -rf "$DIR/swift" "$DIR/daemon.log"
: >"$RESULTS"
log "starting Swift S3 on 127.0.0.1:$PORT"
bash "$ROOT/tests/lib/swift.sh" start "$DIR/swift" "$PORT" >/dev/null
aws --endpoint-url "$LIBSQL_BOTTOMLESS_ENDPOINT" s3api create-bucket --bucket bench >/dev/null
PROXY_LOG=$DIR/swift/log/proxy.log

# 1. write transactions per second, NORMAL and FULL, default and writeback modes
bench_insert() { # bench_insert NAME N SYNC TARGET [mount opts]
    local name=$1 n=$2 sync=$3 target=$4 nat=() fus=() r j
    shift 4
    for ((r = 0; r < ROUNDS; r++)); do
        fresh
        j=$("$SB" insert "$NATIVE/w.db" "$n" "$sync")
        nat+=("$(jget "$j" tx_per_s)")
        mount_fs "$@"
        j=$("$SB" insert "$MNT/w.db" "$n" "$sync")
        fus+=("$(jget "$j" tx_per_s)")
        unmount
    done
    record "$name" "$(median "${nat[@]}")" "$(median "${fus[@]}")" "tx/s" "$target"
}
if ! skip insert; then
    log "1. inserts (${N_INSERT} NORMAL, ${N_FULL} FULL, $ROUNDS rounds)"
    bench_insert "insert NORMAL" "$N_INSERT" NORMAL 0.35
    bench_insert "insert FULL" "$N_FULL" FULL 0.75
    bench_insert "insert NORMAL writeback" "$N_INSERT" NORMAL 0.8 -o writeback
fi

# 2. reads: warm, cold (remount), and readers under a concurrent writer
if ! skip reads; then
    log "2. reads (${N_Q} point SELECTs over ${N_ROWS} rows)"
    fresh
    "$SB" load "$NATIVE/r.db" "$N_ROWS" >/dev/null
    mount_fs
    "$SB" load "$MNT/r.db" "$N_ROWS" >/dev/null
    nat=$(jget "$("$SB" reads "$NATIVE/r.db" "$N_Q" "$N_ROWS")" q_per_s)
    fus=$(jget "$("$SB" reads "$MNT/r.db" "$N_Q" "$N_ROWS")" q_per_s)
    record "reads warm" "$nat" "$fus" "q/s" 0.95
    unmount
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    nat=$(jget "$("$SB" reads "$NATIVE/r.db" "$N_Q" "$N_ROWS")" q_per_s)
    mount_fs
    fus=$(jget "$("$SB" reads "$MNT/r.db" "$N_Q" "$N_ROWS")" q_per_s)
    record "reads cold (remount)" "$nat" "$fus" "q/s" 0.95
    jn=$("$SB" mixed "$NATIVE/r.db" 5 "$N_ROWS")
    jm=$("$SB" mixed "$MNT/r.db" 5 "$N_ROWS")
    record "reads with a writer" "$(jget "$jn" q_per_s)" "$(jget "$jm" q_per_s)" "q/s" 0.9
    record "writer with readers" "$(jget "$jn" writer_tx_per_s)" "$(jget "$jm" writer_tx_per_s)" "tx/s" -
    unmount
fi

# 3. bulk load
if ! skip bulk; then
    log "3. bulk load ${BULK_MB} MB in one transaction + checkpoint"
    for mode in default writeback; do
        fresh
        nat=$(jget "$("$SB" bulk "$NATIVE/b.db" "$BULK_MB")" mb_per_s)
        if [[ $mode == writeback ]]; then mount_fs -o writeback; else mount_fs; fi
        fus=$(jget "$("$SB" bulk "$MNT/b.db" "$BULK_MB")" mb_per_s)
        unmount
        record "bulk load ($mode)" "$nat" "$fus" "MB/s" "$([[ $mode == writeback ]] && echo 0.7 || echo 0.3)"
    done
fi

# 4. speedtest1 (SQLite's own benchmark, from Debian's sqlite3 sources)
if ! skip speedtest; then
    log "4. speedtest1 --journal wal"
    ST=$(bash "$ROOT/bench/speedtest1.sh" "${BENCH_SRC:-/var/tmp/bfs-src}")
    fresh
    t0=$(date +%s.%N)
    "$ST" --journal wal --verify --size 50 "$NATIVE/st.db" >"$DIR/st-native.txt" 2>&1
    t1=$(date +%s.%N)
    mount_fs
    "$ST" --journal wal --verify --size 50 "$MNT/st.db" >"$DIR/st-mount.txt" 2>&1
    t2=$(date +%s.%N)
    unmount
    hn=$(sed -n 's/.*Verification Hash: //p' "$DIR/st-native.txt")
    hm=$(sed -n 's/.*Verification Hash: //p' "$DIR/st-mount.txt")
    [[ -n $hn && $hn == "$hm" ]] || die "speedtest1 --verify hashes differ: native '$hn' mount '$hm'"
    # report as runs per hour so that higher is better like the others
    record "speedtest1 (runs/h, hash equal)" "$(echo "3600/($t1-$t0)" | bc -l)" "$(echo "3600/($t2-$t1)" | bc -l)" "runs/h" 0.5
fi

# 5./6. replication lag at 100 and 1000 tx/s, PUT rate
if ! skip lag; then
    for mode in default writeback; do
        for rate in 100 1000; do
            log "5. replication lag at $rate tx/s ($mode)"
            fresh
            if [[ $mode == writeback ]]; then mount_fs -o writeback; else mount_fs; fi
            n=$((rate * 10))
            puts0=$(grep -c '"PUT /bench/' "$PROXY_LOG" 2>/dev/null || true)
            t0=$SECONDS
            j=$("$SB" lag "$MNT/lag.db" "$rate" "$n" "$BACKING/lag.db-wal" "$MNT/.bottomless/status") || die "lag run failed: $j"
            wait_for 30 lag_zero || true
            secs=$((SECONDS - t0))
            puts=$(( $(grep -c '"PUT /bench/' "$PROXY_LOG" 2>/dev/null || true) - puts0 ))
            unmount
            record "lag p50 ms @${rate}/s ($mode)" - "$(jget "$j" p50_ms)" ms -
            record "lag p99 ms @${rate}/s ($mode)" - "$(jget "$j" p99_ms)" ms -
            record "lag max ms @${rate}/s ($mode)" - "$(jget "$j" max_ms)" ms -
            pps=$(echo "$puts/$secs" | bc -l)
            record "PUT/s @${rate}/s ($mode)" - "$pps" "PUT/s" -
            record "PUT/month @${rate}/s ($mode)" - "$(echo "$pps*2592000" | bc -l)" "PUT" -
        done
    done
fi

# 7. restore of a big database: CLI, lazy open, against aws s3 cp of the same objects
if ! skip restore; then
    log "7. restore of a ${RESTORE_MB} MiB database"
    fresh
    mount_fs
    "$SB" bulk "$MNT/big.db" "$RESTORE_MB" >/dev/null
    "$SB" insert "$MNT/big.db" 2000 NORMAL >/dev/null
    wait_for 600 lag_zero || die "the big database did not finish uploading"
    unmount
    size=$(stat -c %s "$BACKING/big.db")
    rm -rf "$DIR/awscp" "$DIR/restored.db"
    t0=$(date +%s.%N)
    aws --endpoint-url "$LIBSQL_BOTTOMLESS_ENDPOINT" s3 cp --quiet --recursive "s3://bench/" "$DIR/awscp/"
    t1=$(date +%s.%N)
    s3bytes=$(du -sb "$DIR/awscp" | cut -f1)
    "$BIN/bottomless-cli" -d big.db restore -o "$DIR/restored.db" >/dev/null
    t2=$(date +%s.%N)
    rm -rf "$BACKING"/big.db*
    mount_fs
    t3=$(date +%s.%N)
    sqlite3 "$MNT/big.db" "SELECT count(*) FROM t;" >/dev/null
    t4=$(date +%s.%N)
    unmount
    aws_rate=$(echo "$s3bytes/1048576/($t1-$t0)" | bc -l)
    record "restore CLI (MB/s of S3 bytes)" "$aws_rate" "$(echo "$s3bytes/1048576/($t2-$t1)" | bc -l)" "MB/s" 0.8
    record "restore lazy open (MB/s)" "$aws_rate" "$(echo "$s3bytes/1048576/($t4-$t3)" | bc -l)" "MB/s" 0.8
    record "lazy open: time to first query (s)" - "$(echo "$t4-$t3" | bc -l)" s -
    record "restored db size (MiB)" - "$(echo "$size/1048576" | bc -l)" MiB -
fi

record "daemon peak RSS (MiB)" - "$(echo "$PEAK_RSS_KB/1024" | bc -l)" MiB "<=64"

# --------------------------------------------------------------------------------------------
/usr/bin/python3 - "$RESULTS" "$OUT" <<'PY'
import json, sys, platform, os, subprocess, datetime
rows = []
for line in open(sys.argv[1]):
    name, nat, mnt, unit, target = line.rstrip("\n").split("\t")
    f = lambda s: None if s == "-" else float(s)
    n, m = f(nat), f(mnt)
    ratio = (m / n) if (n and m is not None) else None
    rows.append(dict(name=name, native=n, mount=m, unit=unit, ratio=ratio,
                     target=None if target == "-" else target))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
machine = dict(cpu=cpu, cores=os.cpu_count(), kernel=platform.release(),
               date=datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
json.dump(dict(machine=machine, results=rows), open(sys.argv[2], "w"), indent=1)
fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")
print(f"bottomlessfs benchmark - {machine['date']} - {cpu}, {machine['cores']} cores, kernel {machine['kernel']}")
print(f"| {'workload':38} | {'native':>12} | {'mount':>12} | {'unit':6} | {'ratio':>6} | {'target':>6} |")
print(f"|{'-'*40}|{'-'*14}|{'-'*14}|{'-'*8}|{'-'*8}|{'-'*8}|")
for r in rows:
    print(f"| {r['name']:38} | {fmt(r['native']):>12} | {fmt(r['mount']):>12} | {r['unit']:6} | "
          f"{fmt(r['ratio']) if r['ratio'] is not None else '-':>6} | {r['target'] or '-':>6} |")
print(f"\n(JSON: {sys.argv[2]})")
PY
