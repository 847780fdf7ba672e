#!/usr/bin/env bash
# Tests of the Python package, as a user gets it: the wheel built with maturin (pinned,
# in a venv of this script's own) and linked by Zig, checked against the manylinux_2_17
# policy by maturin's auditwheel check, installed into that venv, then pytest against
# the installed package.
# One test installs the wheel into a second venv with no cargo or rustc on PATH; one
# builds and installs the sdist (maturin sdist) in a third.
# Then a debug wheel built with the cargo feature `test-hooks` (a native hook that
# panics on purpose; the release wheel has none) runs tests/test_panic.py.
#
#   bash bindings/python/run_tests.sh [pytest args...]
#
# BACKLITE_WHEEL=<wheel>: test that wheel instead of building one.
# BACKLITE_WHEEL_DIR=<dir>: where the built wheel is kept (default: a scratch folder,
#   removed on exit); CI keeps it in its build folder for the consumer and the
#   cross-language tests.
# CARGO_TARGET_DIR: as for cargo (CI shares the C library's; the Zig-linked release
#   build goes to a folder of its own inside it, x86_64-unknown-linux-gnu/).
# PYTHON picks the interpreter (default python3, >= 3.11). Needs network access to PyPI
# (maturin, pytest, ziglang) and crates.io. Installs nothing outside the scratch folder
# but Zig's venv (shared with the Zig binding's tests).
set -euo pipefail

# maturin's version is pinned: a new release cannot change the wheel unnoticed.
maturin_version=1.16.0
# The policy the wheel must meet: manylinux_2_17 (manylinux2014; any Linux with glibc
# >= 2.17). Linked by the host's toolchain the module would need glibc 2.34 (Rust's
# standard library links pthread and dl symbols under the versions glibc 2.34 gave
# them), so maturin links it with Zig (`--zig`), against glibc 2.17's symbols. Zig is
# the one bindings/zig/run_tests.sh uses: ziglang 0.15.2 from PyPI, in a venv under
# $BACKLITE_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/backlite), made on first use.
policy=manylinux_2_17
zig_version=0.15.2
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
# maturin builds the wheel, the sdist and the test-hooks wheel.
"$venv_py" "${pipq[@]}" "maturin==$maturin_version"

if [ -n "${BACKLITE_WHEEL:-}" ]; then
    wheel=$(cd "$(dirname "$BACKLITE_WHEEL")" && pwd)/$(basename "$BACKLITE_WHEEL")
    echo "== the wheel: $wheel (BACKLITE_WHEEL)"
else
    wheel_dir="${BACKLITE_WHEEL_DIR:-$work/wheels}"
    mkdir -p "$wheel_dir"
    wheel_dir=$(cd "$wheel_dir" && pwd)
    rm -f "$wheel_dir"/backlite-*.whl
    tools=${BACKLITE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/backlite}
    zig_venv=$tools/zig-$zig_version-venv
    if [ "$("$zig_venv/bin/python" -m ziglang version 2>/dev/null || true)" != "$zig_version" ]; then
        echo "== pip install ziglang==$zig_version (into $zig_venv)"
        rm -rf "$zig_venv"
        mkdir -p "$tools"
        "$python" -m venv "$zig_venv"
        "$zig_venv/bin/python" "${pipq[@]}" "ziglang==$zig_version"
    fi
    # The unwinder: libgcc_s.so.1, the system's, as a host-linked module has it. maturin
    # turns rustc's -lgcc_s into Zig's libunwind, linked into the module, whose
    # _Unwind_* the module's personality routine then called with the contexts of
    # libgcc_s's unwinder, which glibc's pthread_exit runs: CPython (before 3.14) ends a
    # daemon thread that takes the GIL back during finalization with pthread_exit, and
    # each process that exited while one was inside a call of the module died of
    # SIGSEGV. Named by its path (Zig searches no system folder); manylinux allows it.
    libgcc_s=$(${CC:-cc} -print-file-name=libgcc_s.so.1)
    case "$libgcc_s" in
        /*) ;;
        *) echo "error: '${CC:-cc} -print-file-name=libgcc_s.so.1' found no libgcc_s" >&2; exit 1 ;;
    esac
    echo "== maturin $maturin_version build --release --zig ($policy, auditwheel check; $libgcc_s)"
    # maturin runs Zig as `python3 -m ziglang`: the zig venv's python3 first on PATH.
    # The arguments after `--` go to rustc for the module alone.
    (cd "$here" && PATH="$zig_venv/bin:$PATH" "$work/venv/bin/maturin" build --release \
        --interpreter "$venv_py" --zig --compatibility "$policy" --auditwheel check \
        --out "$wheel_dir" -- -C "link-arg=$libgcc_s")
    wheel=$(ls "$wheel_dir"/backlite-*.whl)
fi
case "$(basename "$wheel")" in
    *-cp311-abi3-manylinux*.whl) ;;
    *) echo "error: $wheel is not a cp311-abi3 manylinux wheel" >&2; exit 1 ;;
esac

# The sdist, for tests/test_sdist.py (which builds and installs it in a venv of its own).
echo "== maturin sdist"
(cd "$here" && "$work/venv/bin/maturin" sdist --out "$work/sdist")
sdist=$(ls "$work"/sdist/backlite-*.tar.gz)

echo "== pip install $(basename "$wheel")"
"$venv_py" "${pipq[@]}" --no-index "$wheel"
"$venv_py" "${pipq[@]}" pytest

echo "== pytest"
cd "$here"
# -p no:cacheprovider: leave no .pytest_cache in the tree; --basetemp: the tests'
# temporary folders in the scratch folder, not /tmp/pytest-of-$USER.
BACKLITE_WHEEL="$wheel" BACKLITE_SDIST="$sdist" BACKLITE_MATURIN_VERSION="$maturin_version" \
    "$venv_py" -m pytest -p no:cacheprovider --basetemp "$work/pytest" -q tests "$@"

# A panic reaching Python as PanicError needs a panic: only a build with the
# `test-hooks` feature has the hook that panics. Debug: it is built only for this. The
# exit with daemon threads inside calls runs against it too: in a debug build the end of
# such a thread by pthread_exit ran the destructors above it (python_calls.rs).
echo "== maturin build --features test-hooks (debug), pytest tests/test_panic.py and the exit test"
"$work/venv/bin/maturin" build --profile dev --features test-hooks --compatibility linux \
    --auditwheel skip --out "$work/hooks-wheel"
"$python" -m venv "$work/hooks-venv"
hooks_py="$work/hooks-venv/bin/python"
"$hooks_py" "${pipq[@]}" --no-index "$work"/hooks-wheel/backlite-*.whl
"$hooks_py" "${pipq[@]}" pytest
BACKLITE_TEST_HOOKS=1 "$hooks_py" -m pytest -p no:cacheprovider --basetemp "$work/pytest-hooks" \
    -q tests/test_panic.py \
    "tests/test_lifetime.py::test_a_process_exits_cleanly_while_daemon_threads_are_inside_calls"
