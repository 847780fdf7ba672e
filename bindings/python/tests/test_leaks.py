"""Leaks: 100k misses, 100k hits and 100k readers leave resident memory and open file
descriptors flat. A leak of one small C object per call (an error object per miss, an
unfreed value buffer per hit, a file per reader) is tens of bytes each, so megabytes
over 100k calls: well above the tolerance, which only absorbs the allocator's own
slack."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

import backlite

CALLS = 100_000
WARM_UP = 10_000
KEYS = 1_000
VALUE = b"v" * 512  # a leaked buffer per hit would be 50 MB
RSS_TOLERANCE_KB = 2 * 1024  # measured growth: 0-8 kB; an error object per miss: ~7.8 MB

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs /proc (Linux) to read VmRSS and open fds"
)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def misses(s: backlite.Storage, n: int) -> None:
    """n misses, through every call that can miss: get, `in`, delete."""
    missing = [f"missing-{i}" for i in range(KEYS)]
    for i in range(n):
        k = missing[i % KEYS]
        if i % 3 == 0:
            assert s.get(k) is None
        elif i % 3 == 1:
            assert k not in s
        else:
            assert s.delete(k) is False


def hits(s: backlite.Storage, n: int) -> None:
    present = [f"key-{i}" for i in range(KEYS)]
    for i in range(n):
        assert s.get_value(present[i % KEYS]) == VALUE


def memoised_hits(s: backlite.Storage, n: int) -> None:
    """n hits of a memoised function, and the items with their time left (a timedelta
    made per call)."""

    @backlite.cached(storage=s, expiration=timedelta(hours=1))
    def f(i):
        return VALUE

    for i in range(n):
        assert f(i % KEYS) == VALUE
        assert s.get(f"key-{i % KEYS}")["value"] == VALUE


def sets_and_hits(s: backlite.Storage, n: int) -> None:
    """n sets of a key, each read back (a refreshed hot key): each set reserved the
    ticks of the hits waiting, and kept the reservation (24 bytes) for ever."""
    present = [f"key-{i}" for i in range(KEYS)]
    for i in range(n):
        s.set_value(present[i % KEYS], VALUE)
        assert s.get_value(present[i % KEYS]) == VALUE


def reader_hits(s: backlite.Storage, n: int) -> None:
    """n readers of values kept in files, opened, read to the end and closed."""
    present = [f"key-{i}" for i in range(KEYS)]
    for i in range(n):
        with s.reader(present[i % KEYS]) as r:
            assert r.read() == VALUE


@pytest.mark.parametrize("what", ["misses", "hits", "memoised_hits", "reader_hits", "sets_and_hits"])
def test_100k_calls_leave_rss_and_fds_flat(tmp_path: Path, what: str) -> None:
    run = {
        "misses": misses, "hits": hits, "memoised_hits": memoised_hits,
        "reader_hits": reader_hits, "sets_and_hits": sets_and_hits,
    }[what]
    # The readers' values in files of their own: a file left open per reader shows.
    threshold = len(VALUE) if what == "reader_hits" else backlite.FILE_THRESHOLD_DEFAULT
    with backlite.Storage(str(tmp_path / "leaks.db"), file_threshold=threshold) as s:
        s.set_many({f"key-{i}": {"value": VALUE} for i in range(KEYS)})
        run(s, WARM_UP)  # page cache, reader pool, pymalloc arenas: all at their size now
        fds_before, rss_before = open_fds(), rss_kb()
        run(s, CALLS)
        fds_after, rss_after = open_fds(), rss_kb()
        assert getattr(s.stats(), what.split("_")[-1]) >= CALLS // 3  # the calls did what they say
    print(f"{CALLS} {what}: RSS {rss_before} -> {rss_after} kB, fds {fds_before} -> {fds_after}")
    assert fds_after == fds_before, f"{CALLS} {what} left {fds_after - fds_before} file descriptors open"
    assert rss_after - rss_before < RSS_TOLERANCE_KB, (
        f"{CALLS} {what} grew the resident memory by {rss_after - rss_before} kB "
        f"(tolerance {RSS_TOLERANCE_KB} kB): a leak"
    )
