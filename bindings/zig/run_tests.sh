#!/usr/bin/env bash
# Tests of the Zig binding: `zig build test` (the unit tests and the README's example),
# against libbacklite.so and then against libbacklite.a; then the unit tests under
# valgrind (`zig build memcheck`), where a definite or indirect leak fails the run.
#
#   bash bindings/zig/run_tests.sh                        # builds the library with cargo first
#   BACKLITE_LIB_DIR=target/release bash bindings/zig/run_tests.sh   # a built library
#
# Zig is pinned to 0.15.2 (later versions drop @cImport), run as `python -m ziglang`
# from a venv of its own under $BACKLITE_CACHE_DIR (default
# ${XDG_CACHE_HOME:-~/.cache}/backlite), installed from PyPI on first use; the global
# Python is never changed. Zig's caches go there too (or to $ZIG_CACHE_DIR), not into
# the tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
zig_version=0.15.2

for dir in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"; do
    [ -d "$dir" ] && case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH
host_python=${PYTHON:-python3}
command -v "$host_python" >/dev/null || { echo "run_tests.sh: $host_python is not installed" >&2; exit 1; }
tools=${BACKLITE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/backlite}
venv=$tools/zig-$zig_version-venv
python=$venv/bin/python
if [ "$("$python" -m ziglang version 2>/dev/null || true)" != "$zig_version" ]; then
    echo "== pip install ziglang==$zig_version (into $venv)"
    rm -rf "$venv"
    mkdir -p "$tools"
    "$host_python" -m venv "$venv" ||
        { echo "run_tests.sh: '$host_python -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
    "$python" -m pip install --quiet --disable-pip-version-check "ziglang==$zig_version"
fi
[ "$("$python" -m ziglang version)" = "$zig_version" ] ||
    { echo "run_tests.sh: zig $zig_version is needed, got $("$python" -m ziglang version)" >&2; exit 1; }

include_dir=${BACKLITE_INCLUDE_DIR:-$root/include}
if [ -z "${BACKLITE_LIB_DIR:-}" ]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    echo "== cargo build --release --lib (CARGO_TARGET_DIR=$target)"
    CARGO_TARGET_DIR="$target" cargo build --release --lib --manifest-path "$root/Cargo.toml"
    BACKLITE_LIB_DIR=$target/release
fi
lib_dir=$(cd "$BACKLITE_LIB_DIR" && pwd)
include_dir=$(cd "$include_dir" && pwd)
for f in "$lib_dir/libbacklite.so" "$lib_dir/libbacklite.a" "$include_dir/backlite.h"; do
    [ -e "$f" ] || { echo "run_tests.sh: missing $f" >&2; exit 1; }
done

cache=${ZIG_CACHE_DIR:-$tools/zig-cache}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
zig_build() {
    (cd "$here" && "$python" -m ziglang build test --summary all \
        --cache-dir "$cache" --global-cache-dir "$cache/global" \
        -Dlib-dir="$lib_dir" -Dinclude-dir="$include_dir" "$@") 2>&1 | tee -a "$log"
    return "${PIPESTATUS[0]}"
}

echo "== zig $zig_version; library: $lib_dir"
echo "== zig build test (libbacklite.so)"
zig_build
echo "== zig build test -Dstatic=true (libbacklite.a)"
zig_build -Dstatic=true
# The same tests under valgrind: a C object the wrapper forgets to free (an error
# object per miss, say) is a leak no Zig allocator sees.
command -v valgrind >/dev/null ||
    { echo "run_tests.sh: valgrind is needed for the leak check (apt-get install valgrind)" >&2; exit 1; }
echo "== zig build memcheck -Dcpu=baseline (the tests under valgrind)"
# Valgrind 3.19 cannot read some of Zig's DWARF 5 line tables and says so once per
# entry; those lines are dropped (function names in its reports still come through).
if ! (cd "$here" && "$python" -m ziglang build memcheck --summary all \
    --cache-dir "$cache" --global-cache-dir "$cache/global" \
    -Dlib-dir="$lib_dir" -Dinclude-dir="$include_dir" -Dcpu=baseline) 2>&1 |
    grep -v -e 'DWARF2 reader: Badly formed extended line op' -e 'unhandled dwarf2 abbrev form code'; then
    echo "run_tests.sh: the Zig tests failed under valgrind (a leak, or a failing test)" >&2
    exit 1
fi
# "Build Summary: 7/7 steps succeeded; 41/41 tests passed", once per build.
passed=$(sed -n 's/^Build Summary:.*; \([0-9]*\)\/[0-9]* tests passed.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
[ "$passed" -gt 0 ] || { echo "run_tests.sh: no Zig test ran" >&2; exit 1; }
echo "== Zig binding: all tests passed (unit tests and the README example, shared and static)"
echo "zig: $passed passed, 0 failed"
