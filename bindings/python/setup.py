"""Build hook: puts libbacklite inside the package, so the installed package needs
neither the repository nor LD_LIBRARY_PATH.

The library comes from, in this order:

1. ``BACKLITE_PREBUILT_LIB=/path/to/libbacklite.so``: copied as it is (no cargo);
2. ``cargo build --release --lib`` in the repository, found through ``BACKLITE_REPO``
   or, by default, two levels above this file (``bindings/python`` in the repo).

Everything else (name, version, metadata) is in pyproject.toml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1

HERE = Path(__file__).resolve().parent
LIB_NAME = "libbacklite.dylib" if sys.platform == "darwin" else "libbacklite.so"


def _fail(msg: str) -> None:
    raise SystemExit(f"backlite build: {msg}")


def _find_repo() -> Path:
    env = os.environ.get("BACKLITE_REPO")
    candidates = [Path(env).expanduser().resolve()] if env else [HERE.parents[1]]
    for repo in candidates:
        manifest = repo / "Cargo.toml"
        if manifest.is_file() and 'name = "backlite"' in manifest.read_text():
            return repo
    where = f"BACKLITE_REPO={env}" if env else f"{HERE.parents[1]} (two levels above setup.py)"
    _fail(
        f"cannot find the BackLite repository at {where}: no Cargo.toml of the backlite "
        "crate there. This happens when pip builds from a copy of bindings/python "
        "outside the repository. Set BACKLITE_REPO=/path/to/backlite, or "
        "BACKLITE_PREBUILT_LIB=/path/to/libbacklite.so to use a library already built."
    )
    raise AssertionError  # unreachable


def _cargo_build(repo: Path) -> Path:
    cargo = os.environ.get("CARGO", "cargo")
    if shutil.which(cargo) is None:
        _fail(
            "cargo not found: install Rust (https://rustup.rs) or set "
            "BACKLITE_PREBUILT_LIB=/path/to/libbacklite.so"
        )
    cmd = [
        cargo, "build", "--release", "--lib",
        "--manifest-path", str(repo / "Cargo.toml"),
        "--message-format=json-render-diagnostics",
    ]
    print("backlite build: " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=repo, stdout=subprocess.PIPE, check=False, text=True)
    if proc.returncode != 0:
        _fail(f"cargo build failed with exit status {proc.returncode}")
    # Cargo names its outputs in its JSON messages: this finds the library whatever
    # CARGO_TARGET_DIR or .cargo/config says.
    found = None
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact":
            continue
        if msg.get("target", {}).get("name") != "backlite":
            continue
        for name in msg.get("filenames", []):
            if Path(name).name == LIB_NAME:
                found = Path(name)
    if found is None or not found.is_file():
        _fail(f"cargo build succeeded but named no {LIB_NAME}")
    return found


def _library() -> Path:
    prebuilt = os.environ.get("BACKLITE_PREBUILT_LIB")
    if prebuilt:
        path = Path(prebuilt).expanduser().resolve()
        if not path.is_file():
            _fail(f"BACKLITE_PREBUILT_LIB={prebuilt}: no such file")
        print(f"backlite build: using BACKLITE_PREBUILT_LIB={path}", file=sys.stderr)
        return path
    return _cargo_build(_find_repo())


class BuildPyWithLibrary(build_py):
    """build_py that also copies libbacklite into backlite/_native/."""

    def run(self) -> None:
        super().run()
        if self.dry_run:
            return
        lib = _library()
        if getattr(self, "editable_mode", False):  # pip install -e: next to the sources
            dest_dir = HERE / "src" / "backlite" / "_native"
        else:
            dest_dir = Path(self.build_lib) / "backlite" / "_native"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / LIB_NAME
        shutil.copyfile(lib, dest)
        dest.chmod(0o755)
        self._backlite_outputs = [str(dest)]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return list(super().get_outputs(include_bytecode)) + list(
            getattr(self, "_backlite_outputs", [])
        )


class BinaryDistribution(Distribution):
    """Carries a native library: installed to platlib, built as a platform wheel."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """A platform wheel (it carries a native library) that any CPython 3 can load
    (ctypes, no extension module): tag py3-none-<platform>."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
)
