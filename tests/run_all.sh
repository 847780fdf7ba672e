#!/usr/bin/env bash
# Runs every test:
#   1. the Rust tests (cargo test), cargo fmt and clippy;
#   2. through CMake and ctest: the C tests (each also under valgrind), the C++
#      binding's tests, the demo, the examples and the install/consumer test; then every
#      bench program once on tiny sizes (bench/smoke.sh);
#   3. each other language binding's own suite, against the library CMake built;
#   4. each binding used from a project of its own outside the tree (tests/consumers/).
# Usage: bash tests/run_all.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-tests}
state_dir=${BACKLITE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/backlite}
mkdir -p "$state_dir"
bash tests/leaves_no_trace.sh snapshot "$state_dir/before-tests"

echo "== cargo test"
cargo test --workspace --all-targets 2>&1
echo "== the CLI on a 1M-entry file and a 128 MiB value (release: bounded memory for import, check, export, get)"
cargo test --release -p backlite-cli --test large -- --ignored --nocapture 2>&1
echo "== cargo install --path cli (README), on the release build just made"
bash tests/cargo_only/install_cli.sh
echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== C and C++ tests (ctest, with valgrind and AddressSanitizer)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBACKLITE_VALGRIND=ON -DBACKLITE_ASAN=ON
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 600
lib_dir=$(cd "$build/cargo/release" && pwd)

echo "== Every bench program, once on tiny sizes (each must run and print its table; no timing is checked)"
BACKLITE_LIB_DIR="$lib_dir" bash bench/smoke.sh

echo "== Go binding (go vet, go test -race)"
BACKLITE_LIB_DIR="$lib_dir" bash bindings/go/run_tests.sh

echo "== Python package (maturin wheel, manylinux check, pytest)"
# Built once into the build folder (the consumer and cross-language tests install the
# same wheel), on the C library's cargo target folder, so the core is not built again.
CARGO_TARGET_DIR="$build/cargo" BACKLITE_WHEEL_DIR="$build/python-wheel" bash bindings/python/run_tests.sh
python_wheel=$(cd "$build/python-wheel" && ls "$PWD"/backlite-*.whl)  # absolute: the consumers run elsewhere

echo "== Zig binding (zig build test, Zig 0.15.2)"
BACKLITE_LIB_DIR="$lib_dir" bash bindings/zig/run_tests.sh

echo "== Swift binding (swift test in a Debian 13 chroot)"
# The toolchain needs about 5 GB: on a machine without it the script prints a loud
# SKIPPED banner (never a silent pass) and the rest of the run goes on.
BACKLITE_ALLOW_SWIFT_SKIP=1 BACKLITE_LIB_DIR="$lib_dir" bash bindings/swift/run_tests.sh

echo "== Each binding used from a project of its own, outside the repository (C++, Go, Zig, Python)"
# (Swift's consumer package is built in bindings/swift/run_tests.sh, in its chroot.)
BACKLITE_BUILD_DIR="$build" BACKLITE_PYTHON_WHEEL="$python_wheel" bash tests/consumers/run.sh

echo "== One cache, many languages (C, Go, Python at once)"
BACKLITE_LIB_DIR="$lib_dir" BACKLITE_PYTHON_WHEEL="$python_wheel" bash tests/cross_language/run.sh

echo "== The README's cargo-only build, in a clean copy of the tree"
bash tests/cargo_only/run.sh

echo "== Nothing left behind in /tmp or the tree"
bash tests/leaves_no_trace.sh check "$state_dir/before-tests" "$build"
