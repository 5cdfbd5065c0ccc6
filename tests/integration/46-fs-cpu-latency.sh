#!/usr/bin/env bash
# 46-fs-cpu-latency: while an app writes through the mount at thousands of FUSE requests a
# second, the daemon holds a 0 us request on /dev/cpu_dma_latency (the kernel's effective value
# reads 0), and drops it once the app stops (back to the kernel default); an app at 100 tx/s
# never makes it take the request, nor does any load with -o nocpu_latency (fs/cpulatency.h).
# Skipped (with a note) without the device or when something else already holds a request.
# timeout: 200
# serial: it measures request rates and the CPU latency request
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"

DEV=/dev/cpu_dma_latency
NONE=2000000000
PY=/usr/bin/python3
qos() { "$PY" -c 'import struct,sys; print(struct.unpack("i", open(sys.argv[1], "rb").read(4))[0])' "$DEV"; }
qos_is_none() { [[ $(qos) == "$NONE" ]]; }
if [[ ! -r $DEV ]]; then
    note "skipped: $DEV is not readable here"
    echo ok
    exit 0
fi
[[ $(qos) == "$NONE" ]] || { note "skipped: another process holds a CPU latency request ($(qos))"; echo ok; exit 0; }

B=$TEST_TMP/back M=$TEST_TMP/mnt
mkdir -p "$B" "$M"
cat >"$TEST_TMP/app.py" <<'EOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=normal")
c.execute("create table if not exists t(id integer primary key, v text)")
n, pause = int(sys.argv[2]), float(sys.argv[3])
for i in range(n):
    c.execute("insert into t(v) values (?)", ("row %d" % i,))
    if pause:
        time.sleep(pause)
print(c.execute("select count(*) from t").fetchone()[0])
EOF

# samples the effective value every 5 ms while PID runs; prints the minimum seen
watch_min() {
    "$PY" - "$1" "$DEV" <<'EOF'
import os, struct, sys, time
pid, dev, low = int(sys.argv[1]), sys.argv[2], 2**31 - 1
while True:
    low = min(low, struct.unpack("i", open(dev, "rb").read(4))[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    if open("/proc/%d/stat" % pid).read().split()[2] == "Z":
        break
    time.sleep(0.005)
print(low)
EOF
}

# 1. busy: taken while the app writes, dropped after it stops
mount_fs "$B" "$M" -o noreplicate
"$PY" "$TEST_TMP/app.py" "$M/busy.db" 30000 0 >"$TEST_TMP/busy.count" &
app=$!
low=$(watch_min $app)
wait $app || fail "app failed"
[[ $(cat "$TEST_TMP/busy.count") == 30000 ]] || fail "row count $(cat "$TEST_TMP/busy.count")"
[[ $low == 0 ]] || fail "no 0 us request while the app wrote (lowest value seen: $low)"
wait_until 5 qos_is_none # the sampler drops it after 4 quiet windows of 50 ms
note "held while busy, dropped after"

# 2. slow app (100 tx/s, a few hundred requests a second): never taken
"$PY" "$TEST_TMP/app.py" "$M/slow.db" 200 0.01 >/dev/null &
app=$!
low=$(watch_min $app)
wait $app || fail "slow app failed"
[[ $low == "$NONE" ]] || fail "request taken at 100 tx/s (lowest value seen: $low)"
unmount_fs "$M"

# 3. -o nocpu_latency: never taken
mount_fs "$B" "$M" -o noreplicate,nocpu_latency
"$PY" "$TEST_TMP/app.py" "$M/off.db" 30000 0 >/dev/null &
app=$!
low=$(watch_min $app)
wait $app || fail "app failed (nocpu_latency)"
[[ $low == "$NONE" ]] || fail "request taken with -o nocpu_latency (lowest value seen: $low)"
unmount_fs "$M"
[[ $(qos) == "$NONE" ]] || fail "a request is left after unmount: $(qos)"
echo ok
