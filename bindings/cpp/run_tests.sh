#!/usr/bin/env bash
# Tests of the C++ binding: configures the root project (which builds the library with
# cargo) in a build directory, builds the C++ tests and the README example, and runs
# them with ctest (label "cpp"; with -DBACKLITE_VALGRIND=ON also memcheck_cpp_tests).
#
#   bash bindings/cpp/run_tests.sh [build-dir] [extra cmake -D arguments...]
#
# build-dir defaults to build-cpp/ at the root; an existing build directory is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-cpp}
[ $# -gt 0 ] && shift

for dir in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"; do
    [ -d "$dir" ] && case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH

if ! grep -Eq '^[[:space:]]*add_subdirectory[[:space:]]*\([[:space:]]*"?bindings/cpp' "$root/CMakeLists.txt"; then
    echo "run_tests.sh: the root CMakeLists.txt must contain add_subdirectory(bindings/cpp)" >&2
    exit 1
fi
configure=()
if [ ! -f "$build/CMakeCache.txt" ]; then
    command -v ninja >/dev/null && configure+=(-G Ninja)
    configure+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi

echo "== cmake -S $root -B $build ${configure[*]:-} $*"
cmake -S "$root" -B "$build" ${configure[@]+"${configure[@]}"} "$@"
echo "== build the C++ tests (and the library, through cargo)"
cmake --build "$build" --target backlite_cpp_tests backlite_cpp_readme_example
echo "== ctest -L cpp"
ctest --test-dir "$build" -L cpp --output-on-failure -j "${CTEST_PARALLEL_LEVEL:-2}"
