#!/usr/bin/env bash
# The README's cargo-only steps, on a copy of the tracked tree in a clean folder:
# `cargo build --release`, then a C program linked against target/release, run three
# ways (rpath, LD_LIBRARY_PATH, static). Fails if the linked program cannot start.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d "${TMPDIR:-/tmp}/backlite-cargo-only.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The tracked files as they are in the working tree (so uncommitted edits are tested).
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
cd "$work"
unset CARGO_TARGET_DIR
cargo build --release
test -L target/release/libbacklite.so.0 || { echo "FAIL: no libbacklite.so.0 link" >&2; exit 1; }

cc examples/c/memoize.c -Iinclude -Ltarget/release -lbacklite \
   -Wl,-rpath,"$PWD/target/release" -o app
cc examples/c/memoize.c -Iinclude target/release/libbacklite.a -lgcc_s -lpthread -ldl -lm \
   -o app_static
readelf -d app | grep -q 'NEEDED.*libbacklite.so.0' || { echo "FAIL: app does not record the SONAME" >&2; exit 1; }

mkdir run && cd run
../app >rpath.out
LD_LIBRARY_PATH=../target/release ../app >ld_path.out
../app_static >static.out
echo "cargo-only build: rpath, LD_LIBRARY_PATH and static programs ran"
