#!/bin/bash
# The Dockerfile cannot be built here (no Docker engine): run its build stage's steps as a script
# in a copy of the source tree, and check that what the runtime stage copies exists and runs.
source "$BFS_ROOT/tests/lib/common.sh"

df="$BFS_ROOT/docker/Dockerfile"
[ -f "$df" ] || fail "missing $df"
grep -q '^FROM debian:bookworm AS build' "$df" || fail "build stage must be Debian bookworm"
grep -q '^FROM debian:bookworm-slim' "$df" || fail "runtime stage must be bookworm-slim"

src="$TEST_TMP/src"
mkdir -p "$src"
git -C "$BFS_ROOT" ls-files -z | (cd "$BFS_ROOT" && xargs -0 cp --parents -t "$src")

# Turn the build stage into a script: WORKDIR -> cd, COPY . . -> (already copied), RUN -> command.
# apt-get lines are replaced by a check that the packages they name are installed.
script="$TEST_TMP/build-steps.sh"
/usr/bin/python3 - "$df" "$src" > "$script" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().replace("\\\n", " ").splitlines()
src = sys.argv[2]
out = ["set -euo pipefail"]
stage = 0
for line in lines:
    line = line.strip()
    if line.startswith("FROM "):
        stage += 1
        continue
    if stage != 1 or not line or line.startswith("#"):
        continue
    op, _, arg = line.partition(" ")
    if op == "WORKDIR":
        out.append(f"cd {src}")
    elif op == "COPY":
        assert arg.strip() == ". .", arg
    elif op == "RUN":
        for part in arg.split("&&"):
            part = part.strip()
            if part.startswith("apt-get install"):
                pkgs = [w for w in part.split()[2:] if not w.startswith("-")]
                out.append("dpkg -s " + " ".join(pkgs) + " >/dev/null")
            elif part.startswith("apt-get update") or part.startswith("rm -rf /var/lib/apt"):
                continue
            else:
                out.append(part)
    else:
        raise SystemExit(f"unhandled Dockerfile instruction in build stage: {op}")
print("\n".join(out))
PY
bash "$script" > "$TEST_TMP/build.log" 2>&1 || { tail -20 "$TEST_TMP/build.log"; fail "Dockerfile build steps failed"; }

# The runtime stage copies these; they must exist and run.
for f in $(sed -n 's|^COPY --from=build \(.*\) /usr/local/bin/$|\1|p' "$df"); do
    b="$src/${f#/src/}"
    [ -x "$b" ] || fail "runtime stage copies $f but the build did not produce it"
    "$b" --version > /dev/null || fail "$f --version failed"
done
# The runtime packages must exist in Debian under these names.
pkgs=$(sed -n '/^FROM debian:bookworm-slim/,$p' "$df" | tr '\\' ' ' | tr '\n' ' ' |
       sed -n 's/.*--no-install-recommends \(.*\) && rm -rf.*/\1/p')
[ -n "$pkgs" ] || fail "could not read the runtime packages"
for p in $pkgs; do
    apt-cache show "$p" > /dev/null 2>&1 || fail "runtime package $p is unknown to apt"
done
echo "docker build steps ok"
