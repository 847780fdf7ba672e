#!/usr/bin/env bash
# Tests of the Python package, as a user gets it: a fresh venv, `pip install
# ./bindings/python` (which builds libbacklite with cargo, or copies
# $BACKLITE_PREBUILT_LIB), pytest, then pytest against the installed package.
#
#   bash bindings/python/run_tests.sh [pytest args...]
#
# PYTHON picks the interpreter (default python3, >= 3.11). Needs network access to PyPI
# (setuptools for the build, pytest). Exits non-zero when anything fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

work="$(mktemp -d "${TMPDIR:-/tmp}/backlite-py-tests.XXXXXX")"
# setuptools builds in place: what it adds to the tree (build/, *.egg-info) goes too.
made=()
for d in "$repo/bindings/python/build" "$repo/bindings/python/src/backlite.egg-info"; do
    [ -e "$d" ] || made+=("$d")
done
trap 'rm -rf "$work" ${made[@]+"${made[@]}"}' EXIT

echo "== python: $("$python" --version 2>&1) ($(command -v "$python"))"
if ! "$python" -m venv "$work/venv" >"$work/venv.log" 2>&1; then
    cat "$work/venv.log" >&2
    # Debian and Ubuntu ship venv's ensurepip in a separate package (.ci/run installs it).
    echo "error: '$python -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
    exit 1
fi
venv_py="$work/venv/bin/python"

if [ -n "${BACKLITE_PREBUILT_LIB:-}" ]; then
    echo "== pip install ./bindings/python (BACKLITE_PREBUILT_LIB=$BACKLITE_PREBUILT_LIB)"
else
    echo "== pip install ./bindings/python (cargo build --release --lib)"
fi
cd "$repo"
"$venv_py" -m pip install --disable-pip-version-check -q ./bindings/python
"$venv_py" -m pip install --disable-pip-version-check -q pytest

echo "== pytest"
cd "$here"
# -p no:cacheprovider: leave no .pytest_cache in the tree.
"$venv_py" -m pytest -p no:cacheprovider -q tests "$@"
