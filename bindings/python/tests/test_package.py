from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import backlite
from backlite import _native

PACKAGE_DIR = Path(backlite.__file__).resolve().parent


def test_version_matches_the_library_and_the_metadata():
    assert backlite.__version__ == "0.1.0"
    assert backlite.library_version() == backlite.__version__
    assert importlib.metadata.version("backlite") == backlite.__version__


NATIVE = Path(_native.__file__).resolve()


def test_the_native_module_ships_inside_the_package():
    assert NATIVE.is_file()
    assert NATIVE.parent == PACKAGE_DIR
    # One module for every CPython >= 3.11 (the stable ABI), not one per version.
    assert NATIVE.name == "_native.abi3.so"
    # The loaded module is that file.
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(NATIVE) in maps.read_text()


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
    assert "backlite 9.9.9 found its native module at version 0.1.0" in proc.stderr


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


def _dynamic_symbols(which: str) -> list[str]:
    """The native module's dynamic symbols, ``--defined-only`` or ``--undefined-only``
    (nm -D), without their versions."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm is not installed")
    out = subprocess.run(
        [nm, "-D", which, str(NATIVE)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]


def test_the_native_module_exports_only_its_init_function():
    # The bundled SQLite must not clash with another SQLite in the process (Python's
    # sqlite3): the module exports nothing but what Python calls to load it.
    assert _dynamic_symbols("--defined-only") == ["PyInit__native"]


def test_the_native_module_unwinds_with_the_system_unwinder():
    # glibc's pthread_exit unwinds with libgcc_s's unwinder, through the module's frames,
    # whose personality routine reads each frame with the unwinder's _Unwind_* getters:
    # those must be libgcc_s's too. The Zig-linked wheel had a copy of LLVM's libunwind
    # inside, so a process exiting while a daemon thread was inside a call died of
    # SIGSEGV (test_lifetime.py's test_a_process_exits_cleanly_while_daemon_threads_...).
    imported = set(_dynamic_symbols("--undefined-only"))
    for name in ("_Unwind_RaiseException", "_Unwind_GetLanguageSpecificData", "_Unwind_GetIP"):
        assert name in imported, (name, sorted(n for n in imported if "Unwind" in n))


def _installed_from_a_wheel() -> bool:
    direct_url = importlib.metadata.distribution("backlite").read_text("direct_url.json")
    return not (direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))


def test_the_wheel_is_a_manylinux_abi3_wheel():
    # What PyPI accepts and pip installs on any Linux with glibc >= 2.N: manylinux_2_N
    # (auditwheel's check, which maturin runs when it builds the wheel).
    if not _installed_from_a_wheel():
        pytest.skip("installed editable (maturin develop): no wheel to check")
    wheel = importlib.metadata.distribution("backlite").read_text("WHEEL")
    assert "Root-Is-Purelib: false" in wheel
    tags = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag: ")]
    machine = sysconfig.get_platform().split("-", 1)[1].replace("-", "_")
    assert tags, wheel
    for tag in tags:
        # manylinux2014 is PEP 599's name for manylinux_2_17, which pip tags both ways.
        assert re.fullmatch(rf"cp311-abi3-manylinux(_2_\d+|2014)_{machine}", tag), tag
    assert any(re.fullmatch(rf"cp311-abi3-manylinux_2_\d+_{machine}", t) for t in tags), tags
    if f"cp311-abi3-manylinux2014_{machine}" in tags:
        assert f"cp311-abi3-manylinux_2_17_{machine}" in tags, tags


def test_the_wheel_installs_where_there_is_no_rust(tmp_path):
    """pip install of the built wheel into a fresh venv, with cargo and rustc nowhere on
    PATH: it needs nothing to build. run_tests.sh names the wheel."""
    wheel = os.environ.get("BACKLITE_WHEEL")
    if not wheel:
        pytest.skip("BACKLITE_WHEEL (the wheel to install) is not set: run_tests.sh sets it")
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any(Path(d, tool).exists() for tool in ("cargo", "rustc"))
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CARGO_HOME", "RUSTUP_HOME")}
    env["PATH"] = path
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(tmp_path / "venv")], env=env, check=True)
    py = str(tmp_path / "venv" / "bin" / "python")
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", wheel],
        env=env, check=True,
    )
    code = (
        "import backlite; s = backlite.Storage(':memory:');"
        "s.set('k', {'value': b'v'}); print(s.get('k'))"
    )
    out = subprocess.run(
        [py, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "{'value': b'v'}"
