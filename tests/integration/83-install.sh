#!/usr/bin/env bash
# 83-install: `make install` honours PREFIX and DESTDIR and installs exactly the two binaries,
# the two man pages and the bash completion; the installed binaries answer --help/--version,
# the man pages render without warnings, the completion completes; `make uninstall` removes
# every installed file. Installs what BFS_BIN holds (build or build/san), never rebuilds it
# differently.
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"

# BUILD= and SAN= matching BFS_BIN, so `install: all` finds everything up to date
rel=${BFS_BIN#"$BFS_ROOT"/}
[[ $rel != "$BFS_BIN" ]] || fail "BFS_BIN=$BFS_BIN is not inside $BFS_ROOT"
san=
[[ $rel == */san || $rel == san ]] && san=1
mk() { make -C "$BFS_ROOT" --no-print-directory BUILD="$rel" SAN="$san" "$@"; }

ROOTDIR=$TEST_TMP/root
PREFIX=/opt/bfs
mk install DESTDIR="$ROOTDIR" PREFIX="$PREFIX" >"$TEST_TMP/install.out" 2>&1 ||
    fail "make install failed: $(tail -20 "$TEST_TMP/install.out")"

want=(
    "$PREFIX/bin/bottomless-cli 755"
    "$PREFIX/bin/bottomlessfs 755"
    "$PREFIX/share/bash-completion/completions/bottomless-cli 644"
    "$PREFIX/share/man/man1/bottomless-cli.1 644"
    "$PREFIX/share/man/man1/bottomlessfs.1 644"
)
got=$(cd "$ROOTDIR" && find . -type f -printf '/%P %m\n' | sort)
[[ $got == "$(printf '%s\n' "${want[@]}")" ]] ||
    fail "installed files differ:"$'\n'"got:"$'\n'"$got"$'\n'"want:"$'\n'"$(printf '%s\n' "${want[@]}")"
cmp "$ROOTDIR$PREFIX/bin/bottomlessfs" "$BFS_BIN/bottomlessfs" || fail "installed daemon differs"
cmp "$ROOTDIR$PREFIX/bin/bottomless-cli" "$BFS_BIN/bottomless-cli" || fail "installed CLI differs"
cmp "$ROOTDIR$PREFIX/share/man/man1/bottomlessfs.1" "$BFS_ROOT/docs/bottomlessfs.1" ||
    fail "installed man page differs"

# the installed programs
bin=$ROOTDIR$PREFIX/bin
[[ $("$bin/bottomlessfs" --version) =~ ^bottomlessfs\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "bottomlessfs --version"
[[ $("$bin/bottomless-cli" --version) =~ ^bottomless-cli\ [0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    fail "bottomless-cli --version"
# (output captured first: grep -q closing the pipe early would fail the writer under pipefail)
out=$("$bin/bottomlessfs" --help) || fail "bottomlessfs --help exited non-zero"
grep -q 'BACKING_DIR MOUNTPOINT' <<<"$out" || fail "bottomlessfs --help"
out=$("$bin/bottomless-cli" --help) || fail "bottomless-cli --help exited non-zero"
grep -q '^Commands:' <<<"$out" || fail "bottomless-cli --help"
for cmd in ls restore verify rm snapshot; do
    out=$("$bin/bottomless-cli" "$cmd" --help) || fail "bottomless-cli $cmd --help exited non-zero"
    grep -qi usage <<<"$out" || fail "bottomless-cli $cmd --help"
done
rc=0
"$bin/bottomless-cli" frobnicate >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "unknown command: exit $rc, not 2"

# the man pages render without groff warnings, with their sections
for page in bottomlessfs bottomless-cli; do
    f=$ROOTDIR$PREFIX/share/man/man1/$page.1
    warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null || true)
    [[ -z $warn ]] || fail "man $page: $warn"
    text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$f" 2>/dev/null)
    for sec in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" ENVIRONMENT "SEE ALSO"; do
        grep -q "^$sec" <<<"$text" || fail "man $page: no $sec section"
    done
    grep -q BOTTOMLESS_LOG <<<"$text" || fail "man $page: BOTTOMLESS_LOG not documented"
done
# MANPATH lookup by name, as a user would
where=$(MANPATH=$ROOTDIR$PREFIX/share/man man -w bottomless-cli) || fail "man -w failed"
[[ $where == "$ROOTDIR$PREFIX/share/man/man1/bottomless-cli.1" ]] ||
    fail "man -w finds '$where', not the installed page"

# the bash completion
comp=$ROOTDIR$PREFIX/share/bash-completion/completions/bottomless-cli
out=$(bash -c 'source "$1"
    complete -p bottomless-cli >/dev/null || exit 3
    COMP_WORDS=(bottomless-cli re); COMP_CWORD=1; _bottomless_cli; echo "${COMPREPLY[*]}"
    COMP_WORDS=(bottomless-cli -d x ls --j); COMP_CWORD=4; _bottomless_cli; echo "${COMPREPLY[*]}"
    COMP_WORDS=(bottomless-cli --log-level de); COMP_CWORD=2; _bottomless_cli; echo "${COMPREPLY[*]}"
' _ "$comp") || fail "completion did not load"
[[ $out == $'restore\n--json\ndebug' ]] || fail "completion answers: $out"

# uninstall removes every file, with the same PREFIX and DESTDIR
mk uninstall DESTDIR="$ROOTDIR" PREFIX="$PREFIX" >"$TEST_TMP/uninstall.out" 2>&1 ||
    fail "make uninstall failed: $(cat "$TEST_TMP/uninstall.out")"
left=$(find "$ROOTDIR" -type f)
[[ -z $left ]] || fail "left after uninstall: $left"
# uninstalling again is harmless
mk uninstall DESTDIR="$ROOTDIR" PREFIX="$PREFIX" >/dev/null 2>&1 || fail "second uninstall failed"

# the default PREFIX is /usr/local
mk install DESTDIR="$ROOTDIR" >/dev/null 2>&1 || fail "make install (default PREFIX) failed"
[[ -x $ROOTDIR/usr/local/bin/bottomlessfs && -f $ROOTDIR/usr/local/share/man/man1/bottomlessfs.1 ]] ||
    fail "default PREFIX is not /usr/local"
mk uninstall DESTDIR="$ROOTDIR" >/dev/null 2>&1 || fail "make uninstall (default PREFIX) failed"
[[ -z $(find "$ROOTDIR" -type f) ]] || fail "default-PREFIX uninstall left files"
note "install/uninstall ok"
