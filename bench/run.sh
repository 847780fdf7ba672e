#!/usr/bin/env bash
# Builds libbacklite.a and the benchmark, then runs it in a scratch folder on local disk.
#
#   bench/run.sh [--quick] [other bench options: --rounds N, --only ops|large|scaling|threads]
#   bench/run.sh --large-values [--quick] [--rounds N]   (bench/large_values.c, issue 16)
#
# Environment:
#   CARGO_TARGET_DIR   cargo's target folder (default: target, in the repository)
#   BENCH_DIR          where the cache files go (default: a new folder under $TMPDIR, or
#                      under the target folder when $TMPDIR is a tmpfs); removed afterwards
#   CC                 the C compiler (default: gcc)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
export CARGO_TARGET_DIR="$target"
cc="${CC:-gcc}"
program=bench
if [ "${1:-}" = --large-values ]; then
  program=large_values
  shift
fi

echo "building libbacklite.a (cargo build --release --lib, target $target)" >&2
cargo build --release --lib >&2
lib="$target/release/libbacklite.a"
[ -f "$lib" ] || { echo "run.sh: $lib was not built" >&2; exit 1; }

# The sqlite3.h of the SQLite that libbacklite.a bundles.
sqlite_h="$(bash "$root/bench/sqlite_header.sh")"

bin="$target/release/backlite-bench"
defines=()
if [ "$program" = large_values ]; then
  bin="$target/release/backlite-large-values"
  # The streaming column, once the library has the streaming read.
  grep -q backlite_storage_get_chunks "$root/include/backlite.h" && defines+=(-DBENCH_STREAMING)
  grep -q backlite_options_set_file_threshold "$root/include/backlite.h" && defines+=(-DBENCH_THRESHOLD)
fi
echo "compiling bench/$program.c (SQLite header: $sqlite_h)" >&2
"$cc" -std=c11 -O2 -Wall -Wextra "${defines[@]}" \
  -I "$root/include" -I "$(dirname "$sqlite_h")" \
  "$root/bench/$program.c" "$lib" \
  -lgcc_s -lutil -lrt -lpthread -ldl -lm \
  -o "$bin"

# Scratch folder on local disk: never a tmpfs, whose writes would flatter every write.
fstype() { stat -f -c %T "$1" 2>/dev/null || echo unknown; }
if [ -n "${BENCH_DIR:-}" ]; then
  mkdir -p "$BENCH_DIR"
  work="$(mktemp -d "$BENCH_DIR/backlite-bench.XXXXXX")"
else
  parent="${TMPDIR:-/tmp}"
  if [ "$(fstype "$parent")" = tmpfs ] || [ "$(fstype "$parent")" = ramfs ]; then
    parent="$target/bench-tmp"
    mkdir -p "$parent"
  fi
  work="$(mktemp -d "$parent/backlite-bench.XXXXXX")"
fi
trap 'rm -rf "$work"' EXIT
echo "running in $work ($(fstype "$work"), $(df -h --output=avail "$work" | tail -1 | tr -d ' ') free)" >&2
"$bin" --dir "$work" "$@"
