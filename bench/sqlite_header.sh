#!/usr/bin/env bash
# Prints the path of the sqlite3.h of the SQLite that libbacklite.a bundles:
# libsqlite3-sys at the version that Cargo.lock pins, in cargo's registry. The bench
# programs that call SQLite themselves (bench.c, large_values.c, get_loop.c) build with it.
#
#   gcc ... -I "$(dirname "$(bash bench/sqlite_header.sh)")" ...
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
sys_version="$(awk '/^name = "libsqlite3-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$root/Cargo.lock")"
[ -n "$sys_version" ] || { echo "sqlite_header.sh: libsqlite3-sys not found in Cargo.lock" >&2; exit 1; }
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
for h in "$cargo_home"/registry/src/*/"libsqlite3-sys-$sys_version"/sqlite3/sqlite3.h; do
  [ -f "$h" ] && { echo "$h"; exit 0; }
done
echo "sqlite_header.sh: sqlite3.h of libsqlite3-sys $sys_version not found under $cargo_home/registry/src" >&2
exit 1
