"""One participant of the cross-language test (Python): the backlite package for the
keys, and the core's single flight for the shared memoised key, stored as raw bytes
(not pickled) so that C and Go read the same value: the native module's lease steps,
which the async memoiser uses.

    python participant.py PATH NAME NAMES COMPUTE_LOG
"""
import sys
import time

import backlite
from backlite import _native

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


def compute() -> bytes:
    with open(compute_log, "a") as log:
        log.write(me + "\n")
    time.sleep(0.5)
    return f"computed by {me}".encode()


attempt = 0
while True:
    rc, data, lease, pause = storage._lease_step(b"shared-memo", attempt)
    attempt += 1
    if rc == _native.OK:
        value = data.decode()
        break
    if lease is not None:
        data = compute()
        lease.fulfill(data, _native.EXPIRATION_NEVER)
        value = data.decode()
        break
    time.sleep(pause)  # another participant computes it: the library's back-off
print(f"{me}: {value}")
storage.close()
