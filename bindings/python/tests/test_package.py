from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import backlite
from backlite import _ffi

PACKAGE_DIR = Path(backlite.__file__).resolve().parent


def test_version_matches_the_library_and_the_metadata():
    assert backlite.__version__ == "0.1.0"
    assert backlite.library_version() == backlite.__version__
    assert importlib.metadata.version("backlite") == backlite.__version__


def test_the_library_ships_inside_the_package():
    assert _ffi.LIB_PATH.is_file()
    assert PACKAGE_DIR in _ffi.LIB_PATH.parents
    # The loaded library is that file, not one found on LD_LIBRARY_PATH.
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(_ffi.LIB_PATH) in maps.read_text()


def test_the_installed_package_needs_no_repo_and_no_ld_library_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    code = (
        "import backlite; s = backlite.Storage(':memory:');"
        "s.set('k', {'value': b'v'}); print(s.get('k'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
        capture_output=True, text=True,
    ).stdout
    assert out.strip() == "{'value': b'v'}"


def test_a_version_mismatch_fails_the_import_with_a_clear_message(tmp_path):
    copy = tmp_path / "backlite"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "9.9.9"'))
    proc = subprocess.run(
        [sys.executable, "-c", "import backlite"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "backlite 9.9.9 found libbacklite 0.1.0" in proc.stderr


def test_py_typed_marker_is_installed():
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_public_names():
    for name in backlite.__all__:
        assert hasattr(backlite, name), name
    for name in (
        "Storage", "cached", "async_cached", "CacheItem", "EvictionPolicy",
        "EVICTION_POLICIES", "ParamHashFunc", "__version__",
        "BackLiteError", "NotACacheError", "TooLargeError", "BusyError",
    ):
        assert name in backlite.__all__, name


def test_the_library_exports_only_backlite_symbols():
    nm = shutil.which("nm")
    if nm is None:
        return
    out = subprocess.run(
        [nm, "-D", "--defined-only", str(_ffi.LIB_PATH)], capture_output=True, text=True
    ).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names
    assert all(n.startswith("backlite_") for n in names), [n for n in names if not n.startswith("backlite_")]


def test_the_wheel_is_platform_specific():
    wheel = importlib.metadata.distribution("backlite").read_text("WHEEL")
    assert "Root-Is-Purelib: false" in wheel
    tags = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag: ")]
    assert tags and all(t.startswith("py3-none-") and not t.endswith("-any") for t in tags)
