#!/usr/bin/env bash
# bench/speedtest1.sh DIR - prints the path of a speedtest1 binary built from Debian's sqlite3
# sources against the system libsqlite3 (fetched with apt-get source into DIR on first use).
set -euo pipefail
# Say which step failed: callers print this script's stderr as the reason.
trap 'echo "bench/speedtest1.sh: line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR
dir=$1
bin=$dir/speedtest1
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi
mkdir -p "$dir"
if ! ls "$dir"/sqlite3_*.orig.tar.xz >/dev/null 2>&1; then
    if ! apt-get source --print-uris sqlite3 >/dev/null 2>&1; then
        # Debian's source index is needed once: add deb-src entries for bookworm.
        cat >/etc/apt/sources.list.d/bfs-debsrc.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update -qq >&2
    fi
    (cd "$dir" && apt-get source -qq --download-only sqlite3 >&2)
fi
tarball=$(ls "$dir"/sqlite3_*.orig.tar.xz | head -1)
# awk reads the whole listing: head would exit first, and tar, killed by SIGPIPE, would fail
# the pipeline (pipefail) whenever the listing outgrows the pipe buffer.
top=$(tar -tJf "$tarball" | awk -F/ 'NR == 1 { print $1 }')
tar -xJf "$tarball" -C "$dir" "$top/test/speedtest1.c" "$top/mptest"
gcc -O2 -o "$bin" "$dir/$top/test/speedtest1.c" -lsqlite3 >&2
gcc -O2 -o "$dir/mptest" "$dir/$top/mptest/mptest.c" -lsqlite3 >&2 || true
echo "$bin"
