"""The measurement behind the Python package's native module: a get that hits, through
cffi's API mode over libbacklite's C ABI vs through the PyO3 module over the core.
Both do the Python-level work of a real binding on each call (the key's bytes, the
call, the value copied out, the buffer freed, the item built). 15 rounds of 20,000
gets taking turns; CPU time of the calling thread, so a busy machine does not count.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install cffi setuptools ./bindings/python
    cargo build --release --lib
    /tmp/v/bin/python bench/python/pyo3_vs_cffi.py target/release

It prints; it asserts nothing about speed.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import cffi

import backlite

N = 20_000
ROUNDS = 15
REPO = Path(__file__).resolve().parents[2]

CDEF = """
typedef struct backlite_storage backlite_storage;
typedef struct backlite_options backlite_options;
typedef struct backlite_error backlite_error;
typedef struct backlite_buf { uint8_t *data; size_t len; } backlite_buf;
int32_t backlite_storage_open(const char *path, const backlite_options *options,
                              backlite_storage **storage_out, backlite_error **err);
int32_t backlite_storage_get(backlite_storage *s, const uint8_t *key, size_t key_len,
                             backlite_buf *value_out, int64_t *expires_in_ms_out,
                             backlite_error **err);
int32_t backlite_storage_set(backlite_storage *s, const uint8_t *key, size_t key_len,
                             const uint8_t *value, size_t value_len, int64_t expiration_ms,
                             backlite_error **err);
void backlite_buf_free(backlite_buf *buf);
"""


def build_cffi(lib_dir: Path, out: Path):
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        "_backlite_cffi", '#include "backlite.h"', include_dirs=[str(REPO / "include")],
        libraries=["backlite"], library_dirs=[str(lib_dir)],
        extra_link_args=[f"-Wl,-rpath,{lib_dir}"],
    )
    ffi.compile(tmpdir=str(out))
    sys.path.insert(0, str(out))
    from _backlite_cffi import ffi, lib  # noqa: PLC0415

    return ffi, lib


def main() -> None:
    lib_dir = Path(sys.argv[1]).resolve()
    keys = [f"k{i:015d}" for i in range(N)]
    value = b"x" * 100
    with tempfile.TemporaryDirectory() as tmp:
        ffi, lib = build_cffi(lib_dir, Path(tmp))
        handle_out = ffi.new("backlite_storage **")
        err = ffi.new("backlite_error **")
        assert lib.backlite_storage_open(os.path.join(tmp, "cffi.db").encode(), ffi.NULL, handle_out, err) == 0
        h = handle_out[0]
        for k in keys:
            kb = k.encode()
            assert lib.backlite_storage_set(h, kb, len(kb), value, len(value), -2, err) == 0
        buf = ffi.new("backlite_buf *")
        left = ffi.new("int64_t *")

        def cffi_get(key):
            kb = key.encode() if type(key) is str else key
            rc = lib.backlite_storage_get(h, kb, len(kb), buf, left, err)
            if rc == 0:
                v = ffi.unpack(ffi.cast("char *", buf.data), buf.len)
                lib.backlite_buf_free(buf)
                if left[0] == -2:
                    return {"value": v}
                return {"value": v, "expiration": timedelta(milliseconds=left[0])}
            if rc == 1:
                return None
            raise RuntimeError(f"backlite_storage_get: {rc}")

        storage = backlite.Storage(os.path.join(tmp, "pyo3.db"))
        for k in keys:
            storage.set_one(k, {"value": value})
        assert cffi_get(keys[0]) == storage.get_one(keys[0])

        def run(get) -> float:
            t = time.thread_time()
            for k in keys:
                get(k)
            return N / (time.thread_time() - t)

        results: dict[str, list[float]] = {"cffi": [], "pyo3": []}
        ways = [("cffi", cffi_get), ("pyo3", storage.get_one)]
        for r in range(ROUNDS):
            for name, get in ways if r % 2 == 0 else ways[::-1]:
                results[name].append(run(get))
        storage.close()
    for name, v in results.items():
        print(f"{name}: get, hit {statistics.median(v):,.0f} ops/s of CPU time "
              f"(median of {ROUNDS} rounds; {min(v):,.0f}..{max(v):,.0f})")
    ratio = statistics.median(results["pyo3"]) / statistics.median(results["cffi"])
    print(f"pyo3 / cffi: {ratio:.2f}x")


if __name__ == "__main__":
    main()
