#!/usr/bin/env bash
# Python benchmark: this package vs diskcache vs the original backlite (PyPI), one table.
#
#   bash bench/python/run.sh [--n N] [--original-n N] [--rounds R]
#
# Builds two venvs in a scratch folder: one with this package (pip install
# ./bindings/python: maturin builds it in release; or the wheel $BACKLITE_WHEEL) and
# diskcache, one with the
# original backlite and pysqlite3-binary (it needs SQLite >= 3.42; the original is
# skipped with a message when that venv cannot be set up). Cache files go to
# $BENCH_DIR (default: the scratch folder, which must be on a real disk, not a tmpfs).
# It prints; it never fails on a figure.
set -euo pipefail

n=20000
original_n=1000
rounds=5
while [ $# -gt 0 ]; do
    case "$1" in
        --n) n="$2"; shift 2 ;;
        --original-n) original_n="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "usage: $0 [--n N] [--original-n N] [--rounds R]" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/backlite-py-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bench_dir="${BENCH_DIR:-$work}"
results="$work/results.jsonl"
pipq=(-m pip install --disable-pip-version-check -q)

echo "== venv: this package + diskcache"
"$python" -m venv "$work/new"
(cd "$repo" && "$work/new/bin/python" "${pipq[@]}" "${BACKLITE_WHEEL:-./bindings/python}")
"$work/new/bin/python" "${pipq[@]}" diskcache

echo "== venv: original backlite (PyPI) + pysqlite3-binary"
have_original=1
if ! { "$python" -m venv "$work/orig" &&
       "$work/orig/bin/python" "${pipq[@]}" backlite pysqlite3-binary; }; then
    have_original=0
    echo "   SKIPPED: could not install the original backlite and pysqlite3-binary"
elif ! "$work/orig/bin/python" -c '
import sys, pysqlite3
sys.modules["sqlite3"] = pysqlite3
v = tuple(int(x) for x in pysqlite3.sqlite_version.split("."))
assert v >= (3, 42), pysqlite3.sqlite_version
import backlite
' ; then
    have_original=0
    echo "   SKIPPED: the original backlite does not import on pysqlite3-binary (SQLite >= 3.42 needed)"
fi

echo "== versions"
"$work/new/bin/python" -c '
import os, sys, sqlite3, backlite, diskcache
print(f"   python {sys.version.split()[0]}; backlite (this) {backlite.__version__} (native module {os.path.basename(backlite._native.__file__)}, core {backlite.library_version()}); diskcache {diskcache.__version__} on SQLite {sqlite3.sqlite_version}")'
if [ "$have_original" = 1 ]; then
    "$work/orig/bin/python" -c '
import importlib.metadata as m, pysqlite3
v = m.version("backlite")
print(f"   original backlite {v} on SQLite {pysqlite3.sqlite_version} (pysqlite3-binary)")'
fi
echo "   N=$n per operation (original: N=$original_n, one round: it runs at ~100 ops/s), $rounds rounds, libraries taking turns, median; values 100 B, keys 16 B; files in $bench_dir"

# One process for this package and diskcache (one venv): operation by operation, the
# libraries take turns round by round, so a busy moment of the machine hits them alike.
echo "== measuring backlite, diskcache, diskcache LRU"
"$work/new/bin/python" "$here/bench.py" measure --lib backlite,diskcache,diskcache-lru \
    --n "$n" --rounds "$rounds" --dir "$bench_dir" >>"$results"
if [ "$have_original" = 1 ]; then
    echo "== the original backlite"
    "$work/orig/bin/python" "$here/bench.py" measure --lib original --n "$original_n" --rounds 1 --dir "$bench_dir" >>"$results" ||
        echo "   the original failed; its column is left out"
fi

echo
"$work/new/bin/python" "$here/bench.py" table "$results"
