#!/usr/bin/env bash
# The robustness suite (see README.md beside this file): crash, contention, hostile
# files, disk full, leak loops (each also under valgrind and AddressSanitizer), the
# differential model test and, with --long, the fuzz targets.
#
#   tests/robustness/run.sh [--long] [build-dir]     (build-dir: default build-robust)
#
# Without --long: the sizes CI runs (about 2 minutes after the build).
# With --long: 500 kills, 8x8 threads x 20000 operations each, 5000 model cases, and
# each cargo-fuzz target for BACKLITE_FUZZ_SECONDS (default 300) if cargo-fuzz and a
# nightly toolchain are installed. Every size can be set through its variable:
# BACKLITE_CRASH_KILLS, BACKLITE_CRASH_SEED, BACKLITE_CONTENTION_OPS, PROPTEST_CASES,
# BACKLITE_MODEL_SEED, BACKLITE_FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/../.."

long=0
build=build-robust
for arg in "$@"; do
  case "$arg" in
    --long) long=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) build=$arg ;;
  esac
done

cmake_args=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBACKLITE_ASAN=ON)
if command -v valgrind >/dev/null 2>&1; then
  cmake_args+=(-DBACKLITE_VALGRIND=ON)
else
  echo "valgrind not found: no memcheck_* runs"
fi
echo "== build ($build)"
cmake "${cmake_args[@]}" >/dev/null
cmake --build "$build"

c_tests='test_hostile_files|test_disk_full|test_leak_loop'
if [ "$long" = 0 ]; then
  echo "== robustness tests (ctest)"
  ctest --test-dir "$build" --output-on-failure -j 2 -R "robust_|$c_tests"
  echo "== differential model test"
  cargo test --test model
  exit 0
fi

export BACKLITE_CRASH_KILLS=${BACKLITE_CRASH_KILLS:-500}
export BACKLITE_CONTENTION_OPS=${BACKLITE_CONTENTION_OPS:-20000}
export PROPTEST_CASES=${PROPTEST_CASES:-5000}
export BACKLITE_MODEL_SEED=${BACKLITE_MODEL_SEED:-$(date +%s)}
fuzz_seconds=${BACKLITE_FUZZ_SECONDS:-300}
bin="$build/tests/robustness"
echo "== crash: $BACKLITE_CRASH_KILLS kills"
"$bin/robust_crash"
echo "== contention: 8 processes x 8 threads x $BACKLITE_CONTENTION_OPS operations"
"$bin/robust_contention"
echo "== hostile files, disk full, leak loops (plain, valgrind, ASan)"
ctest --test-dir "$build" --output-on-failure -j 2 -R "$c_tests"
echo "== differential model test: $PROPTEST_CASES cases, BACKLITE_MODEL_SEED=$BACKLITE_MODEL_SEED"
cargo test --release --test model
if command -v cargo-fuzz >/dev/null 2>&1 && cargo +nightly --version >/dev/null 2>&1; then
  for target in ops ffi; do
    echo "== cargo fuzz run $target (${fuzz_seconds} s)"
    mkdir -p "fuzz/corpus/$target"
    cargo +nightly fuzz run "$target" -- -max_total_time="$fuzz_seconds" -print_final_stats=1
  done
else
  echo "== fuzzing skipped: needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain"
fi
