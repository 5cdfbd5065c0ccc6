#!/usr/bin/env bash
# deps.sh - `make deps`: install what bottomlessfs needs to build, test and demo on Debian 12.
#
# Idempotent and silent when everything is present. As root, missing packages are installed with
# apt-get (one `apt-get update` first, only when something is missing; non-interactive, no
# recommends); otherwise the exact command to run is printed and the exit status is 1.
# Then checks that FUSE is usable (/dev/fuse, loading the fuse module if needed) and fails with
# a clear message if it is not.
set -euo pipefail

PKGS=(
    # build
    gcc make libc6-dev pkg-config
    libfuse3-dev libcurl4-openssl-dev libssl-dev libsqlite3-dev libcriterion-dev
    zlib1g-dev libzstd-dev libexpat1-dev
    # run
    fuse3 sqlite3
    # tests: a real S3 server (OpenStack Swift's S3 API), independent clients, tools
    swift-proxy swift-object swift-container swift-account
    awscli python3-boto3 sqlite3-tools faketime procps bc
    # conformance (79-rel-conformance-torture): fio --verify, stress-ng
    fio stress-ng
)
# interoperability test (15-s3-s3rver): a second S3 server, s3rver, from the npm registry.
# Debian's npm only when there is none (NodeSource's nodejs brings its own and conflicts).
command -v npm >/dev/null || PKGS+=(npm)

installed() { # installed PKG: true if dpkg has it fully installed
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

command -v dpkg-query >/dev/null || {
    echo "deps: dpkg-query not found: this script supports Debian 12 (bookworm) only" >&2
    exit 1
}

missing=()
for p in "${PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    if ((EUID != 0)); then
        echo "deps: missing packages: ${missing[*]}" >&2
        echo "deps: run as root:" >&2
        echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}"
    log=$(mktemp /tmp/bfs-deps.XXXXXX)
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "deps: apt-get failed (full log: $log)" >&2
        exit 1
    fi
    rm -f "$log"
    for p in "${missing[@]}"; do
        installed "$p" || { echo "deps: $p is still not installed" >&2; exit 1; }
    done
fi

# FUSE: the device node, then the kernel module
if [[ ! -c /dev/fuse ]]; then
    if ((EUID == 0)); then
        modprobe fuse 2>/dev/null || true
        [[ -c /dev/fuse ]] || mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || true
    fi
    if [[ ! -c /dev/fuse ]]; then
        echo "deps: FUSE is unavailable: /dev/fuse does not exist." >&2
        echo "deps:   on a host: modprobe fuse (as root); in a container: run it with" >&2
        echo "deps:   --device /dev/fuse --cap-add SYS_ADMIN" >&2
        exit 1
    fi
fi
if ! grep -qw fuse /proc/filesystems; then
    if ((EUID == 0)); then modprobe fuse 2>/dev/null || true; fi
    grep -qw fuse /proc/filesystems || {
        echo "deps: FUSE is unavailable: the kernel does not list 'fuse' in /proc/filesystems" >&2
        exit 1
    }
fi
command -v fusermount3 >/dev/null || {
    echo "deps: fusermount3 not found (package fuse3)" >&2
    exit 1
}

# s3rver for 15-s3-s3rver; not needed to build, run or demo, so a failure (no route to the npm
# registry) only warns: the test installs it itself or fails naming the cause.
if ! bash "$(dirname "${BASH_SOURCE[0]}")/s3rver.sh" install; then
    echo "deps: warning: s3rver (npm) not installed; 15-s3-s3rver will try again" >&2
fi
