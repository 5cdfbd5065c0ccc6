#!/usr/bin/env bash
# 85-syslog: once daemonised (no -f), bottomlessfs logs to syslog: facility daemon, ident
# "bottomlessfs[PID]", one message per event, none on the terminal. The test runs in a private
# mount namespace (unshare -m) whose /dev is a copy of the real one plus a /dev/log socket served
# by a small listener, so the machine's own /dev and syslog are never touched.
# timeout: 120
source "$BFS_ROOT/tests/lib/common.sh"

command -v unshare >/dev/null || fail "unshare (util-linux) is missing"
T=$TEST_TMP
mkdir -p "$T/dev" "$T/b" "$T/m"
cat >"$T/inner.sh" <<'EOF'
set -euo pipefail
T=$1 BIN=$2
lp=
finish() {
    local rc=$?
    set +e
    [[ -n $lp ]] && kill "$lp" 2>/dev/null && wait "$lp" 2>/dev/null
    grep -q " $T/m " /proc/mounts && fusermount3 -u -z "$T/m"
    exit "$rc"
}
trap finish EXIT
mount -t tmpfs -o mode=755 none "$T/dev"
for d in null zero full fuse urandom random tty; do
    [[ -e /dev/$d ]] || continue
    touch "$T/dev/$d"
    mount --bind "/dev/$d" "$T/dev/$d"
done
mount --rbind "$T/dev" /dev
/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' "$T/syslog.txt" &
lp=$!
for _ in $(seq 1 100); do [[ -e $T/syslog.txt.ready ]] && break; sleep 0.05; done
[[ -e $T/syslog.txt.ready ]] || { echo "listener did not start"; exit 1; }
"$BIN/bottomlessfs" -o noreplicate "$T/b" "$T/m" >"$T/terminal.txt" 2>&1
echo hello >"$T/m/x.txt"
[[ $(cat "$T/b/x.txt") == hello ]] || { echo "passthrough broken"; exit 1; }
fusermount3 -u "$T/m"
for _ in $(seq 1 100); do grep -q 'main: unmounting' "$T/syslog.txt" 2>/dev/null && break; sleep 0.1; done
EOF
unshare -m --propagation private bash "$T/inner.sh" "$T" "$BFS_BIN" || fail "the namespaced run failed"

log=$T/syslog.txt
[[ -s $log ]] || fail "nothing reached /dev/log"
cat "$log" >&2
# <30> = facility daemon (3) * 8 + severity info (6)
grep -qE '^<30>.* bottomlessfs\[[0-9]+\]: main: mounted backing=' "$log" || fail "no mount line in syslog"
grep -qE '^<30>.* bottomlessfs\[[0-9]+\]: main: unmounting ' "$log" || fail "no unmount line in syslog"
bad=$(grep -vE '^<[0-9]+>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} bottomlessfs\[[0-9]+\]: [a-z0-9_]+: ' "$log" || true)
[[ -z $bad ]] || fail "malformed syslog lines: $bad"
if grep -q 'main: unmounting' "$T/terminal.txt"; then fail "daemon logged to the terminal after detaching"; fi
note "ok: $(wc -l <"$log") syslog lines"
