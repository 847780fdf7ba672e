"""``Storage.lifetime_stats`` and ``Storage.zero_stats``: the file's lifetime counters
(C ``backlite_storage_lifetime_stats`` / ``backlite_storage_zero_stats``)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

import backlite
from backlite import LifetimeStats


def test_counters_add_up_over_handles_and_survive_reopen(db):
    before_ms = int(time.time() * 1000)
    with backlite.Storage(db, size_limit=10) as s:
        s.set("a", {"value": b"123456"})
        s.set("b", {"value": b"123456"})  # evicts a
        for _ in range(2):
            assert s.get("b") is not None
        for key in ("a", "x", "y"):
            assert s.get(key) is None
        life = s.lifetime_stats()
        assert isinstance(life, LifetimeStats)
        assert (life.hits, life.misses, life.evictions) == (2, 3, 1)
    with backlite.Storage(db, size_limit=10) as s:
        assert s.get("b") is not None
        life = s.lifetime_stats()
        assert (life.hits, life.misses, life.evictions, life.expirations) == (3, 3, 1, 0)
        # Counting began when the file was made, in this test.
        assert before_ms - 1000 <= life.since_ms <= int(time.time() * 1000)
        assert life.since == datetime.fromtimestamp(life.since_ms / 1000, tz=timezone.utc)
        # This handle's own counters are separate.
        assert s.stats().hits == 1


def test_expired_entries_removed_are_counted(db):
    with backlite.Storage(db) as s:
        s.set("soon", {"value": b"x", "expiration": timedelta(milliseconds=1)})
        while "soon" in s:  # until it has expired (`in` is not a lookup: no miss)
            time.sleep(0.001)
        s.set("k", {"value": b"v"})  # a write removes the expired entry
        life = s.lifetime_stats()
        assert (life.hits, life.misses, life.evictions, life.expirations) == (0, 0, 0, 1)


def test_zero_stats_starts_counting_again(db):
    with backlite.Storage(db) as s:
        s.set("k", {"value": b"v"})
        assert s.get("k") is not None
        assert s.get("nope") is None
        first = s.lifetime_stats()
        assert (first.hits, first.misses) == (1, 1)
        before_ms = int(time.time() * 1000)
        assert s.zero_stats() is None
        life = s.lifetime_stats()
        assert (life.hits, life.misses, life.evictions, life.expirations) == (0, 0, 0, 0)
        assert life.since_ms >= before_ms >= first.since_ms
        assert s.get("k") is not None
        assert s.stats().hits == 2  # this handle's counters are kept
    with backlite.Storage(db) as s:
        life = s.lifetime_stats()
        assert (life.hits, life.misses) == (1, 0)


def test_an_in_memory_cache_counts_too():
    with backlite.Storage(":memory:") as s:
        s.set("k", {"value": b"v"})
        s.get("k")
        s.get("x")
        life = s.lifetime_stats()
        assert (life.hits, life.misses) == (1, 1)


# A process that reads "a" and exits with its Storage still open: held by a daemon
# thread, which CPython never frees at exit, so no close or deallocation writes the
# hit it buffered.
_READ_A_AND_EXIT = """
import sys, threading, time
import backlite

s = backlite.Storage(sys.argv[1], size_limit=300)
assert s.get("a") is not None

def hold(storage):
    while True:
        time.sleep(60)

threading.Thread(target=hold, args=(s,), daemon=True).start()
"""


def test_a_process_that_exits_without_closing_its_storage_keeps_its_hits(db, child_env):
    with backlite.Storage(db, size_limit=300) as s:
        for key in "abc":
            s.set(key, {"value": b"x" * 100})
    subprocess.run([sys.executable, "-c", _READ_A_AND_EXIT, db], env=child_env, check=True)
    with backlite.Storage(db, size_limit=300) as s:
        assert s.lifetime_stats().hits == 1
        # Least recently used: "b", not "a", which the other process read last.
        s.set("d", {"value": b"x" * 100})
        assert s.get_keys() == {"a", "c", "d"}


def _read_a(storage: backlite.Storage) -> None:
    assert storage.get("a") is not None


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_multiprocessing_child_keeps_its_hits(db):
    # The child reads through the parent's storage (reopened there on first use) and is
    # ended by multiprocessing with os._exit, which runs no atexit handler and frees
    # nothing: its Process object holds the storage to the end.
    with backlite.Storage(db, size_limit=300) as s:
        for key in "abc":
            s.set(key, {"value": b"x" * 100})
        child = multiprocessing.get_context("fork").Process(target=_read_a, args=(s,))
        child.start()
        child.join()
        assert child.exitcode == 0
    with backlite.Storage(db, size_limit=300) as s:
        assert s.lifetime_stats().hits == 1
        s.set("d", {"value": b"x" * 100})
        assert s.get_keys() == {"a", "c", "d"}


# Daemon threads inside calls of the library when the interpreter exits. Before 3.14,
# CPython ends a thread that takes the GIL back after finalization has begun with
# pthread_exit: a forced unwind, run by libgcc_s's unwinder, through the module's
# frames (PyO3 parks the thread there, for good).
_EXIT_WHILE_DAEMONS_CALL = """
import sys, threading, time
import backlite

s = backlite.Storage(sys.argv[1], file_threshold=None)
s.set("big", {"value": b"x" * 4_000_000})
mode = sys.argv[2]
calls = [0, 0, 0]


@backlite.cached(storage=s)
def computed(x):
    time.sleep(0.001)
    return x


def loop(i):
    n = 0
    while True:
        if mode == "get":
            s.get("big")
        elif mode == "reader":
            with s.reader("big") as r:
                while r.read(1 << 20):
                    pass
        else:
            computed((i, n))
        n += 1
        calls[i] = n


for i in range(3):
    threading.Thread(target=loop, args=(i,), daemon=True).start()
while min(calls) < 3:
    time.sleep(0.001)
"""


@pytest.mark.parametrize("mode", ["get", "reader", "cached"])
def test_a_process_exits_cleanly_while_daemon_threads_are_inside_calls(tmp_path, child_env, mode):
    for run in range(3):
        db = str(tmp_path / f"{mode}{run}.db")
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_WHILE_DAEMONS_CALL, db, mode],
            env=child_env, capture_output=True, timeout=300,
        )
        assert done.returncode == 0, (run, done.returncode, done.stderr[-2000:])
