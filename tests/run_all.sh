#!/usr/bin/env bash
# Runs every test: the Rust tests (cargo test), then the C tests, the demo and the
# install/consumer test through CMake and ctest, with each C test also run under
# valgrind. Usage: bash tests/run_all.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-tests}

echo "== cargo test"
cargo test --all-targets 2>&1
echo "== cargo fmt / clippy"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

echo "== C tests (ctest, with valgrind)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBACKLITE_VALGRIND=ON
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 600
