#!/usr/bin/env bash
# Builds every bench program and runs each once on tiny sizes, to see that it runs: each
# must exit 0 and print its table. Timings are not looked at (on tiny sizes they mean
# nothing). Part of the test command (tests/run_all.sh); about half a minute.
#
#   BACKLITE_LIB_DIR=<folder with libbacklite.a> bash bench/smoke.sh
#
# Environment: BACKLITE_LIB_DIR (default: $CARGO_TARGET_DIR/release, or target/release),
# CC (default gcc), CARGO_TARGET_DIR (bench/remote_bench.rs and bench/hit_write_cost.rs
# are cargo examples, built in its debug profile; the first starts its own redis-server).
# Everything goes to a temporary folder, removed at the end.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
lib_dir="${BACKLITE_LIB_DIR:-${CARGO_TARGET_DIR:-target}/release}"
lib="$lib_dir/libbacklite.a"
[ -f "$lib" ] || { echo "smoke.sh: $lib not found (build it: cargo build --release --lib)" >&2; exit 1; }
cc="${CC:-gcc}"
sqlite_inc="$(dirname "$(bash bench/sqlite_header.sh)")"

work="$(mktemp -d "${TMPDIR:-/tmp}/backlite-bench-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

build() { # build NAME [FLAGS...]: bench/NAME.c into $work/NAME, as its header says
  local name=$1
  shift
  "$cc" -O2 -Wall -Wextra "$@" -I include -I "$sqlite_inc" "bench/$name.c" \
    "$lib" -lgcc_s -lutil -lrt -lpthread -ldl -lm -o "$work/$name"
}

failed=0
# run LABEL MARKER COMMAND...: runs COMMAND in a folder of its own; fails unless it exits 0
# and its output holds MARKER (a line of its table; empty for a program that prints none).
run() {
  local label=$1 marker=$2
  shift 2
  local dir="$work/run.$((++runs))" start=$SECONDS rc=0
  mkdir "$dir"
  (cd "$dir" && "$@") >"$dir.out" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $label: exit status $rc; its output:"
    tail -n 30 "$dir.out"
    failed=1
  elif [ -n "$marker" ] && ! grep -qF -- "$marker" "$dir.out"; then
    echo "FAIL $label: no '$marker' in its output:"
    tail -n 30 "$dir.out"
    failed=1
  else
    echo "ok   $label ($((SECONDS - start)) s)"
  fi
  rm -rf "$dir" "$dir.out"
}
runs=0

build bench -std=c11
large_defines=(-std=c11)
grep -q backlite_storage_get_chunks include/backlite.h && large_defines+=(-DBENCH_STREAMING)
grep -q backlite_options_set_file_threshold include/backlite.h && large_defines+=(-DBENCH_THRESHOLD)
build large_values "${large_defines[@]}"
build get_loop
build set_loop
build slow_gets
build set_after_reads -std=c11
build pull_reader -std=c11

# bench.c: every table (operations, large working set, scaling, concurrency).
run "bench --smoke" "== Summary ==" "$work/bench" --smoke --dir .
run "large_values --smoke (64 KiB, 1 MiB)" "CPU per set" "$work/large_values" --smoke --dir .
run "pull_reader --smoke (1 MiB, 4 MiB)" "pull reader ms" "$work/pull_reader" --smoke --dir .
run "get_loop" "CPU ns per get" "$work/get_loop" . 1000 2000 2
run "get_loop, raw SQLite" "CPU ns per get" env GET_LOOP_RAW=1 "$work/get_loop" . 1000 2000 2
run "get_loop, streaming" "CPU ns per get" env GET_LOOP_STREAM=1 "$work/get_loop" . 1000 2000 2
for mode in new over many; do
  run "set_loop $mode" "" "$work/set_loop" . 1000 200 "$mode"
done
for policy in least-recently-used least-frequently-used most-recently-used first-in-first-out \
  last-in-first-out; do
  run "set_loop evict $policy" "" "$work/set_loop" . 1000 200 evict "$policy"
done
run "set_loop new, 64 KiB values" "" "$work/set_loop" . 100 50 new 65536
run "slow_gets (fill, then gets)" "CPU ms: reader" \
  sh -c "'$work/slow_gets' . 1000 1 1000 fill >/dev/null && '$work/slow_gets' . 1000 2000 1000"
run "set_after_reads" "sets right after" "$work/set_after_reads" . 2000 3000 3
# The cargo examples, with the workspace's features, as cargo test --workspace built
# them: nothing to rebuild after the test command's cargo test. remote_bench's temporary
# folder (tempfile) goes under $work; hit_write_cost's under its run folder.
cargo build --quiet --workspace --example remote_bench --example hit_write_cost
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
run "remote_bench (own redis-server)" "set READ_WRITE vs local set + SET" \
  env TMPDIR="$work" "$target/debug/examples/remote_bench" 50 2
run "hit_write_cost" "in place" "$target/debug/examples/hit_write_cost" 2000 500 2
run "hit_write_cost order" "tick order, 32 MiB" "$target/debug/examples/hit_write_cost" 2000 500 2 order

exit "$failed"
