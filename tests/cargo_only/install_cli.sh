#!/usr/bin/env bash
# README: the `backlite` command is installed "with `cargo install --path cli`". This
# does it into a fresh root (on the workspace's target folder, which the release CLI
# tests have just built, and with Cargo.lock's versions) and runs what it installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(mktemp -d "${TMPDIR:-/tmp}/backlite-cargo-install.XXXXXX")
trap 'rm -rf "$root"' EXIT

cargo install --path cli --root "$root" --locked --quiet
cli="$root/bin/backlite"
test -x "$cli" || { echo "FAIL: cargo install made no $cli" >&2; exit 1; }
"$cli" --version
"$cli" set "$root/c.db" greeting hello --expire 10m
test "$("$cli" get "$root/c.db" greeting)" = hello || { echo "FAIL: get" >&2; exit 1; }
"$cli" check "$root/c.db" >/dev/null
"$cli" stats "$root/c.db" --json | grep -q '"entries":1' || { echo "FAIL: stats" >&2; exit 1; }
echo "cargo install --path cli: the installed backlite runs"
