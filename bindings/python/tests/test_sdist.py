"""The source distribution (``maturin sdist``) is complete: pip builds and installs it
into a fresh venv (with cargo: it compiles the core), and the installed package works.
run_tests.sh makes the sdist and names it in BACKLITE_SDIST."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import backlite


def test_the_sdist_builds_installs_and_works(tmp_path):
    sdist = os.environ.get("BACKLITE_SDIST")
    if not sdist:
        pytest.skip("BACKLITE_SDIST (the sdist to install) is not set: run_tests.sh sets it")
    top = f"backlite-{backlite.__version__}"
    with tarfile.open(sdist) as t:
        names = set(t.getnames())
    # The package, its crate, and the core it is built over (a path dependency).
    for name in ("pyproject.toml", "PKG-INFO", "Cargo.lock", "src/backlite/__init__.py",
                 "bindings/python/Cargo.toml", "bindings/python/native/lib.rs",
                 "core/Cargo.toml", "core/src/lib.rs"):
        assert f"{top}/{name}" in names, name

    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "venv"
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The build backend: the maturin run_tests.sh pins, not whatever PyPI has today.
    subprocess.run([*pip, f"maturin=={os.environ['BACKLITE_MATURIN_VERSION']}"], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # pip unpacks and builds in TMPDIR: here, so nothing is left behind. A debug build:
    # what is tested is that the sdist has everything a build needs (run_tests.sh
    # already builds and tests the release module).
    env["TMPDIR"] = str(tmp_path)
    # maturin's backend runs the `maturin` of PATH: the venv's, as if it were activated.
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["MATURIN_PEP517_ARGS"] = "--profile dev"
    # A target folder of its own: maturin sdist dates every file 2006, so in a shared
    # one (run_tests.sh passes CARGO_TARGET_DIR on) cargo took the core an earlier
    # sdist's build had compiled for fresh, its sources being "older", and built the
    # module over a stale core (or failed: "no method named ..." for a new one).
    env["CARGO_TARGET_DIR"] = str(tmp_path / "target")
    subprocess.run([*pip, "--no-build-isolation", sdist], env=env, check=True)

    code = (
        "import backlite, pathlib;"
        "print(pathlib.Path(backlite.__file__).resolve());"
        "s = backlite.Storage('c.db');"
        "s.set('k', {'value': b'v'}); print(s.get('k')); print(s.get('absent'))"
    )
    out = subprocess.run(
        [py, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert Path(out[0]).is_relative_to(venv.resolve())
    assert out[1:] == ["{'value': b'v'}", "None"]
