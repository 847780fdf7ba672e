#!/bin/sh
# ctest cli_install: `cmake --install` into a fresh prefix gives a bin/backlite that
# runs and reads back what it wrote.
# Usage: cli_install.sh CMAKE BUILD_DIR WORK_DIR
set -eu
cmake=$1 build=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
"$cmake" --install "$build" --prefix "$work/prefix" >/dev/null
cli="$work/prefix/bin/backlite"
test -x "$cli" || { echo "cli_install: $cli is missing" >&2; exit 1; }
"$cli" --version
"$cli" set "$work/c.db" greeting hello --expire 10m
test "$("$cli" get "$work/c.db" greeting)" = hello
"$cli" check "$work/c.db" >/dev/null
rm -rf "$work"
echo "cli_install: ok"
