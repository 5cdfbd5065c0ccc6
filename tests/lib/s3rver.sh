# shellcheck shell=bash
# s3rver.sh - a second S3 server for the interoperability test: s3rver 3.7.1 (npm), a Node.js
# implementation written apart from Swift (test-servers.md: it checks neither signatures nor
# Content-MD5, so it is no oracle; what it catches is a request or an answer that only Swift
# happens to accept: XML, listings, multipart, ranges, deletes).
#
# As a command (tests/lib/deps.sh): bash tests/lib/s3rver.sh install
#     installs it with npm into S3RVER_HOME unless it is there; exit 1 with the reason.
# Sourced after common.sh:
#   s3rver_start DATADIR   installs it if needed, starts it on a free 127.0.0.1 port with its
#                          objects under DATADIR, waits until it answers (20 s), registers its
#                          stop with on_exit, and sets S3RVER_URL (call it directly, not in
#                          a $(...) subshell: it fails the test on error)
# S3RVER_HOME: default ${XDG_CACHE_HOME:-$HOME/.cache}/bottomlessfs/s3rver-3.7.1 (outside the
# tree, so `make clean` keeps it). Its keys: access key S3RVER, secret S3RVER.

S3RVER_VERSION=3.7.1
S3RVER_HOME=${S3RVER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bottomlessfs/s3rver-$S3RVER_VERSION}

s3rver_install() {
    [[ -x $S3RVER_HOME/node_modules/.bin/s3rver ]] && return 0
    command -v npm >/dev/null || {
        echo "s3rver: npm not found: run make deps (it installs Debian's npm)" >&2
        return 1
    }
    mkdir -p "$S3RVER_HOME"
    local log=$S3RVER_HOME/npm-install.log
    if ! npm install --prefix "$S3RVER_HOME" --no-audit --no-fund --no-save \
        "s3rver@$S3RVER_VERSION" </dev/null >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "s3rver: npm install s3rver@$S3RVER_VERSION failed (log: $log)" >&2
        return 1
    fi
    [[ -x $S3RVER_HOME/node_modules/.bin/s3rver ]] || {
        echo "s3rver: installed, but $S3RVER_HOME/node_modules/.bin/s3rver is missing" >&2
        return 1
    }
}

_s3rver_stop() { # PID
    kill -TERM "$1" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

s3rver_start() {
    local dir=$1 port pid end_ns
    s3rver_install || fail "s3rver is not installed and could not be installed"
    mkdir -p "$dir"
    port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # without the legacy provider every paginated listing answers 500 (test-servers.md)
    NODE_OPTIONS=--openssl-legacy-provider "$S3RVER_HOME/node_modules/.bin/s3rver" \
        --directory "$dir" --address 127.0.0.1 --port "$port" --silent \
        </dev/null >"$dir.log" 2>&1 &
    pid=$!
    on_exit _s3rver_stop "$pid"
    end_ns=$(($(date +%s%N) + 20 * 1000000000))
    until /usr/bin/python3 -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir.log" >&2; fail "s3rver exited at start"; }
        (($(date +%s%N) < end_ns)) || { cat "$dir.log" >&2; fail "s3rver did not answer in 20 s"; }
        sleep 0.1
    done
    export S3RVER_URL=http://127.0.0.1:$port
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
    install) s3rver_install ;;
    *) echo "usage: bash tests/lib/s3rver.sh install" >&2; exit 2 ;;
    esac
fi
