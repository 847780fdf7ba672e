"""One participant of the cross-language test (Python): the backlite package for the
keys, and the C library's single-flight call (through the package's ctypes layer) for
the shared memoised key.

    python participant.py PATH NAME NAMES COMPUTE_LOG
"""
import ctypes
import sys
import time

import backlite
from backlite import _ffi

path, me, names, compute_log = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
KEYS = 20

storage = backlite.Storage(path)
for i in range(KEYS):
    storage.set_value(f"{me}-{i}", f"{me} wrote {i}".encode())
for other in names:
    for i in range(KEYS):
        for _ in range(3000):  # up to 30 s for the others to start
            got = storage.get_value(f"{other}-{i}")
            if got is not None:
                break
            time.sleep(0.01)
        assert got == f"{other} wrote {i}".encode(), (other, i, got)


@_ffi.COMPUTE_FN
def compute(user_data, sink):
    with open(compute_log, "a") as log:
        log.write(me + "\n")
    time.sleep(0.5)
    value = f"computed by {me}".encode()
    return 0 if _ffi.lib.backlite_sink_write(sink, value, len(value)) == 0 else 1


buf = _ffi.Buf()
err = ctypes.c_void_p()
rc = _ffi.lib.backlite_cached_call_exclusive(
    storage._handle(), b"shared-memo", 11, compute, None, -2, 30000, ctypes.byref(buf), ctypes.byref(err)
)
if rc != 0:
    raise _ffi.take_error(rc, err)
value = ctypes.string_at(buf.data, buf.len).decode()
_ffi.lib.backlite_buf_free(ctypes.byref(buf))
print(f"{me}: {value}")
storage.close()
