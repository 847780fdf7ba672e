#!/usr/bin/env bash
# Tests of the Python package, as a user gets it: the wheel built with maturin (pinned,
# in a venv of this script's own), checked against the manylinux policy by maturin's
# auditwheel check, installed into that venv, then pytest against the installed package.
# One test installs the wheel into a second venv with no cargo or rustc on PATH.
# Then a debug wheel built with the cargo feature `test-hooks` (a native hook that
# panics on purpose; the release wheel has none) runs tests/test_panic.py.
#
#   bash bindings/python/run_tests.sh [pytest args...]
#
# BACKLITE_WHEEL=<wheel>: test that wheel instead of building one.
# BACKLITE_WHEEL_DIR=<dir>: where the built wheel is kept (default: a scratch folder,
#   removed on exit); CI keeps it in its build folder for the consumer and the
#   cross-language tests.
# CARGO_TARGET_DIR: as for cargo (CI shares the C library's, so the core is built once).
# PYTHON picks the interpreter (default python3, >= 3.11). Needs network access to PyPI
# (maturin, pytest) and crates.io. Installs nothing outside the scratch folder.
set -euo pipefail

# maturin's version is pinned: a new release cannot change the wheel unnoticed.
maturin_version=1.16.0
# The policy the wheel must meet: built on Debian 12 (glibc 2.36), the Rust standard
# library links pthread and dl symbols as glibc 2.34 versions them, so manylinux_2_34
# (any Linux with glibc >= 2.34) is the oldest policy a wheel built here can meet.
policy=manylinux_2_34

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# maturin runs in this folder: a relative target folder is made absolute first, or cargo
# would build a second one inside the package.
case "${CARGO_TARGET_DIR:-}" in
    "" | /*) ;;
    *) export CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;;
esac
python="${PYTHON:-python3}"
pipq=(-m pip install --disable-pip-version-check -q)

work="$(mktemp -d "${TMPDIR:-/tmp}/backlite-py-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "== python: $("$python" --version 2>&1) ($(command -v "$python"))"
if ! "$python" -m venv "$work/venv" >"$work/venv.log" 2>&1; then
    cat "$work/venv.log" >&2
    # Debian and Ubuntu ship venv's ensurepip in a separate package (.ci/run installs it).
    echo "error: '$python -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
    exit 1
fi
venv_py="$work/venv/bin/python"

if [ -n "${BACKLITE_WHEEL:-}" ]; then
    wheel=$(cd "$(dirname "$BACKLITE_WHEEL")" && pwd)/$(basename "$BACKLITE_WHEEL")
    echo "== the wheel: $wheel (BACKLITE_WHEEL)"
else
    wheel_dir="${BACKLITE_WHEEL_DIR:-$work/wheels}"
    mkdir -p "$wheel_dir"
    wheel_dir=$(cd "$wheel_dir" && pwd)
    rm -f "$wheel_dir"/backlite-*.whl
    echo "== maturin $maturin_version build --release ($policy, auditwheel check)"
    "$venv_py" "${pipq[@]}" "maturin==$maturin_version"
    (cd "$here" && "$work/venv/bin/maturin" build --release --compatibility "$policy" \
        --auditwheel check --out "$wheel_dir")
    wheel=$(ls "$wheel_dir"/backlite-*.whl)
fi
case "$(basename "$wheel")" in
    *-cp311-abi3-manylinux_*.whl) ;;
    *) echo "error: $wheel is not a cp311-abi3 manylinux wheel" >&2; exit 1 ;;
esac

echo "== pip install $(basename "$wheel")"
"$venv_py" "${pipq[@]}" --no-index "$wheel"
"$venv_py" "${pipq[@]}" pytest

echo "== pytest"
cd "$here"
# -p no:cacheprovider: leave no .pytest_cache in the tree; --basetemp: the tests'
# temporary folders in the scratch folder, not /tmp/pytest-of-$USER.
BACKLITE_WHEEL="$wheel" "$venv_py" -m pytest -p no:cacheprovider --basetemp "$work/pytest" -q tests "$@"

# A panic reaching Python as PanicError needs a panic: only a build with the
# `test-hooks` feature has the hook that panics. Debug: it is built only for this.
echo "== maturin build --features test-hooks (debug), pytest tests/test_panic.py"
"$venv_py" "${pipq[@]}" "maturin==$maturin_version"
"$work/venv/bin/maturin" build --profile dev --features test-hooks --compatibility linux \
    --auditwheel skip --out "$work/hooks-wheel"
"$python" -m venv "$work/hooks-venv"
hooks_py="$work/hooks-venv/bin/python"
"$hooks_py" "${pipq[@]}" --no-index "$work"/hooks-wheel/backlite-*.whl
"$hooks_py" "${pipq[@]}" pytest
BACKLITE_TEST_HOOKS=1 "$hooks_py" -m pytest -p no:cacheprovider --basetemp "$work/pytest-hooks" \
    -q tests/test_panic.py
