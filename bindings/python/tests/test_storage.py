from __future__ import annotations

import enum
import io
import pickle
import signal
import typing
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import backlite
from backlite import (
    EVICTION_POLICIES,
    BackLiteError,
    BusyError,
    CacheItem,
    NotACacheError,
    Storage,
    StorageIOError,
)


def test_set_then_get_returns_the_item_without_expiration_when_it_never_expires(storage):
    storage.set("key", {"value": b"value"})
    assert storage.get("key") == {"value": b"value"}
    assert storage.get_one("key") == {"value": b"value"}


def test_get_of_a_missing_key_is_none(storage):
    assert storage.get("nope") is None
    assert storage.get_one("nope") is None


def test_set_one_get_one_with_cache_item(storage):
    item = CacheItem(value=b"Hello, Alice!")
    storage.set_one("key", item)
    assert storage.get_one("key") == item


def test_get_returns_the_time_left_as_expiration(storage):
    storage.set("key", {"value": b"v", "expiration": timedelta(seconds=60)})
    item = storage.get("key")
    assert item["value"] == b"v"
    assert timedelta(seconds=50) < item["expiration"] <= timedelta(seconds=60)


def test_expiration_zero_is_already_expired(storage):
    storage.set("key", {"value": b"v", "expiration": timedelta(0)})
    assert storage.get("key") is None
    storage.set("key", {"value": b"v", "expiration": timedelta(seconds=-5)})
    assert storage.get("key") is None


@pytest.mark.parametrize("expiration", [timedelta(0), timedelta(seconds=-5), timedelta(microseconds=-1)])
def test_a_negative_expiration_is_already_expired_everywhere(db, expiration):
    # Decided: a time in the past is already expired, as in the original (its
    # deadline was now + expiration), not a ValueError: a deadline computed as
    # `deadline - now` that has just passed stores nothing, through every call. It
    # still removes the older value under the key.
    import asyncio

    with Storage(db, default_expiration=expiration) as s, Storage(db) as t:
        for key in ("set", "set_value", "set_many", "default"):
            t.set(key, {"value": b"old"})
        t.set("set", {"value": b"v", "expiration": expiration})
        t.set_value("set_value", b"v", expiration)
        t.set_many({"set_many": {"value": b"v", "expiration": expiration}})
        s.set("default", {"value": b"v"})
        assert t.get_many() == {}
        calls = []

        @backlite.cached(storage=t, expiration=expiration)
        def f(x):
            calls.append(x)
            return x

        @backlite.cached(storage=s)
        def g(x):
            calls.append(x)
            return x

        @backlite.async_cached(storage=t, expiration=expiration)
        async def h(x):
            calls.append(x)
            return x

        assert [f(1), f(1), g(2), g(2), asyncio.run(h(3)), asyncio.run(h(3))] == [1, 1, 2, 2, 3, 3]
        assert calls == [1, 1, 2, 2, 3, 3]
        assert t.stats().count == 0


def test_an_expired_item_is_never_returned_listed_or_counted(storage):
    storage.set("short", {"value": b"v", "expiration": timedelta(milliseconds=5)})
    storage.set("long", {"value": b"v"})
    time.sleep(0.05)  # well past the 5 ms
    assert storage.get("short") is None
    assert storage.get_keys() == {"long"}
    assert storage.get_many() == {"long": {"value": b"v"}}
    assert storage.stats().count == 1


def test_a_sub_millisecond_expiration_is_not_rounded_to_already_expired(storage):
    storage.set("key", {"value": b"v", "expiration": timedelta(microseconds=1)})
    # rounded up to 1 ms: may or may not have passed, but the set must not fail
    assert backlite.storage.expiration_ms(timedelta(microseconds=1)) == 1
    assert backlite.storage.expiration_ms(timedelta(seconds=1.5)) == 1500


def test_default_expiration_applies_to_items_set_without_one(db):
    # The seed stored default_expiration and never used it.
    with Storage(db, default_expiration=timedelta(seconds=30)) as s:
        s.set("a", {"value": b"v"})
        s.set("b", {"value": b"v", "expiration": None})
        s.set("c", {"value": b"v", "expiration": timedelta(seconds=300)})
        assert timedelta(seconds=20) < s.get("a")["expiration"] <= timedelta(seconds=30)
        assert timedelta(seconds=20) < s.get("b")["expiration"] <= timedelta(seconds=30)
        assert s.get("c")["expiration"] > timedelta(seconds=200)
    with Storage(db + "2", default_expiration=timedelta(0)) as s:
        s.set("a", {"value": b"v"})
        assert s.get("a") is None


def test_string_keys_are_their_utf8_bytes(storage):
    storage.set("clé", {"value": b"1"})
    assert storage.get("clé".encode()) == {"value": b"1"}
    storage.set(b"\xff\x00raw", {"value": b"2"})
    assert storage.get(b"\xff\x00raw") == {"value": b"2"}
    storage.set("", {"value": b"empty key"})
    assert storage.get(b"") == {"value": b"empty key"}


def test_keys_read_back_are_str_or_bytes_when_not_utf8(storage):
    storage.set("text", {"value": b"1"})
    storage.set(b"\xff\xfe", {"value": b"2"})
    assert storage.get_keys() == {"text", b"\xff\xfe"}
    assert set(storage.get_many()) == {"text", b"\xff\xfe"}


def test_keys_and_values_must_be_bytes_like(storage):
    with pytest.raises(TypeError):
        storage.set(1, {"value": b"v"})
    with pytest.raises(TypeError):
        storage.set("k", {"value": "not bytes"})
    with pytest.raises(TypeError):
        storage.set("k", b"not a dict")
    with pytest.raises(TypeError):
        storage.set("k", {"value": b"v", "expiration": 5})
    storage.set("k", {"value": bytearray(b"ba")})
    assert storage.get("k") == {"value": b"ba"}


def test_empty_and_binary_values_round_trip(storage):
    storage.set("empty", {"value": b""})
    assert storage.get("empty") == {"value": b""}
    blob = bytes(range(256)) * 1000
    storage.set("blob", {"value": blob})
    assert storage.get("blob") == {"value": blob}


def test_set_many_get_many(storage):
    items = {
        "key1": CacheItem(value=b"Hello, Alice!"),
        "key2": CacheItem(value=b"Hello, Bob!"),
    }
    storage.set_many(items)
    assert storage.get_many(items.keys()) == items
    assert storage.get_many() == items


def test_get_many_returns_only_the_keys_asked_for(storage):
    # The seed's SQL (`key IN (...) AND expires_at IS NULL OR ...`) returned every item.
    storage.set_many({"a": {"value": b"1"}, "b": {"value": b"2"}, "c": {"value": b"3"}})
    assert storage.get_many(["a", "missing"]) == {"a": {"value": b"1"}}
    assert storage.get_many([]) == {}


def test_get_many_keeps_the_callers_key_objects(storage):
    storage.set(b"bk", {"value": b"1"})
    assert storage.get_many([b"bk", "bk"]) == {b"bk": {"value": b"1"}, "bk": {"value": b"1"}}


def test_set_many_stores_str_and_bytes_subclasses_as_set_does(storage):
    # A str mixin enum's str() is "Kind.RED", not its text; a bytes subclass may have a
    # __bytes__ of its own. set and get take the text and the bytes themselves.
    class Kind(str, enum.Enum):
        RED = "red"

    class Tagged(bytes):
        def __bytes__(self) -> bytes:
            return b"tagged:" + bytes.__bytes__(self)

    storage.set("red", {"value": b"old"})
    storage.set(b"raw", {"value": b"old"})
    storage.set_many({Kind.RED: {"value": b"new"}, Tagged(b"raw"): {"value": Tagged(b"v")}})
    assert storage.get(Kind.RED) == {"value": b"new"}
    assert storage.get(b"raw") == {"value": b"v"}
    assert storage.get_keys() == {"red", "raw"}


def test_set_many_with_expirations(storage):
    storage.set_many(
        {
            "gone": {"value": b"1", "expiration": timedelta(0)},
            "later": {"value": b"2", "expiration": timedelta(seconds=60)},
            "never": {"value": b"3"},
        }
    )
    got = storage.get_many(["gone", "later", "never"])
    assert set(got) == {"later", "never"}
    assert "expiration" in got["later"]
    assert got["never"] == {"value": b"3"}


def test_get_keys(storage):
    items = {"key1": CacheItem(value=b"Hello, Alice!"), "key2": CacheItem(value=b"Hello, Bob!")}
    storage.set_many(items)
    assert storage.get_keys() == set(items)
    assert storage.get_keys(["key1"]) == {"key1"}
    assert storage.get_keys(["not_in_cache"]) == set()
    assert storage.get_keys([]) == set()


def test_get_keys_of_many_entries(storage):
    storage.set_many({f"k{i}": {"value": b"v"} for i in range(2500)})
    assert storage.get_keys() == {f"k{i}" for i in range(2500)}


@pytest.mark.parametrize(
    ("policy", "evicted"),
    [
        ("least-recently-used", "key2"),
        ("least-frequently-used", "key2"),
        ("most-recently-used", "key1"),
        ("first-in-first-out", "key1"),
        ("last-in-first-out", "key2"),
    ],
)
def test_eviction_policies(db, policy, evicted):
    # The seed's scenario for each policy, without its sleeps: the order is exact.
    with Storage(db, size_limit=7, eviction_policy=policy) as s:
        s.set_one("key1", {"value": b"123"})
        s.set_one("key2", {"value": b"456"})
        if policy in ("least-recently-used", "least-frequently-used", "most-recently-used"):
            assert s.get_one("key1") == {"value": b"123"}
        s.set_one("key3", {"value": b"789"})
        kept = {"key1", "key2"} - {evicted}
        for k in kept | {"key3"}:
            assert s.get_one(k) is not None, k
        assert s.get_one(evicted) is None
        assert s.stats().evictions == 1


def test_eviction_policies_are_the_five_seed_names():
    assert EVICTION_POLICIES == {
        "least-recently-used",
        "least-frequently-used",
        "most-recently-used",
        "first-in-first-out",
        "last-in-first-out",
    }
    assert set(typing.get_args(backlite.EvictionPolicy)) == EVICTION_POLICIES


def test_invalid_policy_is_a_value_error(db):
    with pytest.raises(ValueError, match="Invalid eviction policy"):
        Storage(db, eviction_policy="random")
    assert not Path(db).exists()


def test_a_negative_busy_timeout_is_a_value_error(db):
    # It was taken as 0 without a word (a lock held a moment failed BusyError at once),
    # where a negative lease_length or remote_timeout is refused. Zero is a timeout: do
    # not wait.
    with pytest.raises(ValueError, match="busy_timeout"):
        Storage(db, busy_timeout=timedelta(milliseconds=-1))
    with pytest.raises(ValueError):
        Storage(db, lease_length=timedelta(seconds=-1))
    assert not Path(db).exists()
    with Storage(db, busy_timeout=timedelta(0)) as s:
        s.set_value("k", b"v")


def test_option_errors_name_their_option(db):
    # busy_timeout=5 and lease_length=5 raised TypeError "expiration is a
    # datetime.timedelta or None, not int", naming no option they were given; a
    # size_limit of 2**64 raised OverflowError, not the ValueError of 0 or 2**63.
    for option in ("busy_timeout", "lease_length"):
        with pytest.raises(TypeError, match=f"^{option} is a datetime.timedelta or None, not int"):
            Storage(db, **{option: 5})
    for limit in (2**63, 2**64, 2**100):
        for option in ("size_limit", "max_size"):
            with pytest.raises(ValueError, match="size_limit must be a positive int below 2"):
                Storage(db, **{option: limit})
    assert not Path(db).exists()
    with Storage(db, size_limit=2**63 - 1) as s:
        assert s.stats().max_size == 2**63 - 1


def test_max_size_is_accepted_as_in_the_readme(db):
    with Storage(db, max_size=1024**3) as s:
        assert s.size_limit == s.max_size == 1024**3
        assert s.stats().max_size == 1024**3
    with Storage(db, max_size=10) as s:
        assert s.stats().max_size == 10
    with Storage(db, size_limit=10, max_size=10) as s:
        assert s.size_limit == 10
    with pytest.raises(TypeError):
        Storage(db, size_limit=10, max_size=20)
    with pytest.raises(ValueError):
        Storage(db, size_limit=0)


def test_default_size_limit_is_1_gib(storage):
    assert storage.size_limit == 1024**3
    assert storage.stats().max_size == 1024**3


def test_item_larger_than_size_limit_is_not_stored_and_removes_the_old_value(db):
    with Storage(db, size_limit=3) as s:
        s.set_one("key", {"value": b"123"})
        s.set_one("key", {"value": b"12345"})  # the seed: silently not stored
        assert s.get_one("key") is None
        s.set_many({"big": {"value": b"12345"}, "small": {"value": b"1"}, "key": {"value": b"9999"}})
        assert s.get_keys() == {"small"}


def test_set_many_of_one_key_twice_keeps_the_last_as_sets_in_turn_do(db):
    # "k" and b"k" are two keys of a dict and one key of the cache: the later item wins,
    # even when it is too large (not stored, and what the earlier one stored goes).
    with Storage(db, size_limit=3) as s:
        s.set_many({"k": {"value": b"1"}, b"k": {"value": b"12345"}})
        assert s.get("k") is None
        s.set_many({"k": {"value": b"12345"}, b"k": {"value": b"2"}})
        assert s.get("k") == {"value": b"2"}


def test_set_many_with_an_item_too_large_is_seen_whole_or_not_at_all(db):
    # The older value of a too-large item went in a delete of its own before the batch:
    # another handle, looking at every step of the call, saw "old" gone and "new" not
    # yet there (as a crash between the two would have left the file).
    with Storage(db, size_limit=3) as s, Storage(db, size_limit=3) as other:
        s.set_many({"old": {"value": b"1"}, "kept": {"value": b"2"}})
        seen = set()

        def look(*_):
            seen.add(("old" in other, "new" in other))

        sys.setprofile(look)
        try:
            s.set_many({"old": {"value": b"12345"}, "new": {"value": b"3"}})
        finally:
            sys.setprofile(None)
        assert seen <= {(True, False), (False, True)}
        assert s.get_keys() == {"kept", "new"}


def test_set_many_skips_a_value_sqlite_cannot_hold_as_set_does(db):
    # Without a file threshold a value is at most MAX_VALUE_SIZE bytes, below the 1 GiB
    # default size_limit: set skipped such a value (not stored, the older one removed)
    # but set_many raised TooLargeError and stored none of the batch.
    too_large = bytes(backlite._native.MAX_VALUE_SIZE + 1)  # zero pages, never touched
    with Storage(db, file_threshold=None) as s:
        s.set_value("big", b"old")
        s.set_many({"small": {"value": b"1"}, "big": {"value": too_large}})
        assert s.get_keys() == {"small"}


def test_items_totalling_larger_than_size_limit_are_evicted(db):
    with Storage(db, size_limit=5) as s:
        items = {"key1": {"value": b"123"}, "key2": {"value": b"456"}, "key3": {"value": b"789"}}
        s.set_many(items)
        assert len(s.get_many(items.keys())) == 1


def test_delete(storage):
    storage.set("k", {"value": b"v"})
    assert storage.delete("k") is True
    assert storage.delete("k") is False
    assert storage.get("k") is None


def test_clear(storage):
    storage.set_many({f"k{i}": {"value": b"v"} for i in range(10)})
    storage.clear()
    assert storage.get_keys() == set()
    assert storage.stats().count == 0


def test_contains_is_not_an_access(storage):
    storage.set("k", {"value": b"v"})
    before = storage.stats()
    assert "k" in storage
    assert "nope" not in storage
    after = storage.stats()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_stats(storage):
    storage.set("a", {"value": b"12345"})
    storage.set("b", {"value": b"678"})
    storage.get("a")
    storage.get("zzz")
    st = storage.stats()
    assert isinstance(st, backlite.Stats)
    assert (st.count, st.total_size, st.max_size) == (2, 8, 1024**3)
    assert (st.hits, st.misses, st.evictions) == (1, 1, 0)
    with pytest.raises(AttributeError):
        st.count = 3  # frozen


def test_close_and_context_manager(db):
    with Storage(db) as s:
        s.set("k", {"value": b"v"})
        assert not s.closed
    assert s.closed
    s.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        s.get("k")
    with Storage(db) as s2:
        assert s2.get("k") == {"value": b"v"}



@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_many([]),
        lambda s: s.set_many({}),
        lambda s: s.get_keys([]),
        lambda s: s.get_many(["k"]),
        lambda s: s.set_many({"k": {"value": b"v"}}),
        lambda s: s.get_keys(["k"]),
        lambda s: s.__enter__(),
    ],
    ids=["get_many([])", "set_many({})", "get_keys([])", "get_many", "set_many", "get_keys",
         "with"],
)
def test_every_call_on_a_closed_storage_raises_value_error(db, call):
    # "later calls raise ValueError": get_many([]), set_many({}) and get_keys([]) with
    # nothing to do, and `with` of a closed storage, returned as if it were open (a
    # file's `with` after close raises ValueError), so a use after close went unseen
    # until its arguments happened to hold a key.
    s = Storage(db)
    s.close()
    with pytest.raises(ValueError, match="closed"):
        call(s)


# A Storage freed unclosed writes its buffered hits as close() does, waiting for the
# lock another process holds. The other threads must run meanwhile: here the one that
# tells that process to let go. The switch interval is huge, so the dropping thread
# gives up the GIL only by releasing it, never at a bytecode boundary.
_DROP_WHILE_LOCKED = """
import gc, sqlite3, subprocess, sys, threading
from datetime import timedelta
import backlite

db = sys.argv[1]
s = backlite.Storage(db, busy_timeout=timedelta(seconds=30))
s.set("k", {"value": b"v"})
s.close()
holder = subprocess.Popen(
    [sys.executable, "-c",
     "import sqlite3, sys\\n"
     "c = sqlite3.connect(sys.argv[1], isolation_level=None)\\n"
     "c.execute('BEGIN IMMEDIATE'); print('held', flush=True)\\n"
     "sys.stdin.readline(); c.execute('COMMIT')\\n", db],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert holder.stdout.readline() == "held\\n"
s = backlite.Storage(db, busy_timeout=timedelta(seconds=30))
assert s.get("k") is not None  # a hit, written when the handle goes
dropping, dropped = threading.Event(), threading.Event()
seen = []

def let_go():
    dropping.wait()
    seen.append("while dropping" if not dropped.is_set() else "after the drop")
    holder.stdin.write("\\n")
    holder.stdin.flush()

helper = threading.Thread(target=let_go)
helper.start()
sys.setswitchinterval(1000)
dropping.set()
del s
gc.collect()
dropped.set()
sys.setswitchinterval(0.005)
helper.join()
holder.wait()
print(seen[0])
"""


def test_a_storage_freed_unclosed_lets_other_threads_run_while_it_waits_for_the_lock(
    db, child_env
):
    out = subprocess.run(
        [sys.executable, "-c", _DROP_WHILE_LOCKED, db],
        env=child_env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "while dropping\n"


def test_memory_storage_is_private(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = Storage(":memory:")
    b = Storage(":memory:")
    a.set("k", {"value": b"v"})
    assert a.get("k") == {"value": b"v"}
    assert b.get("k") is None
    assert list(tmp_path.iterdir()) == []
    a.close()
    b.close()


def test_parent_folder_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "cache.db"
    with Storage(path) as s:
        s.set("k", {"value": b"v"})
    assert path.exists()


def test_a_file_that_is_not_a_cache_raises_not_a_cache_and_is_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(NotACacheError) as info:
        Storage(path)
    assert info.value.code == 5
    assert isinstance(info.value, BackLiteError)
    assert info.value.message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_directory_raises_an_io_error_with_its_code(tmp_path):
    with pytest.raises(StorageIOError) as info:
        Storage(tmp_path)
    assert info.value.code == 4
    assert "result 4" in str(info.value)


@pytest.mark.parametrize("name", ["a\0b.db", "sub\0dir/c.db"])
def test_a_location_with_a_nul_byte_is_a_value_error_and_creates_nothing(tmp_path, name):
    # As open() says "embedded null byte": it raised StorageIOError "cannot stat ...:
    # file name contained an unexpected NUL byte", a failure of the file system.
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(ValueError, match="NUL|null"):
        backlite.Storage(str(folder / name))
    assert list(folder.iterdir()) == []


def test_errors_pickle_with_their_code():
    err = backlite.errors.error_from_code(7, "locked")
    assert isinstance(err, BusyError)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is BusyError
    assert (again.code, again.message) == (7, "locked")
    assert isinstance(backlite.errors.error_from_code(3, "x"), ValueError)
    assert type(backlite.errors.error_from_code(99, "x")) is BackLiteError


_HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_busy_after_the_busy_timeout_raises_busy_error(db):
    with Storage(db, busy_timeout=timedelta(milliseconds=50)) as s:
        s.set("k", {"value": b"v"})
        # Another process holds the write lock (through its own SQLite).
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_WRITE_LOCK, db],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "locked"
            assert s.get("k") == {"value": b"v"}  # readers are not blocked (WAL)
            with pytest.raises(BusyError) as info:
                s.set("k2", {"value": b"v"})
            assert info.value.code == 7
        finally:
            holder.communicate("\n", timeout=30)
        s.set("k2", {"value": b"v"})
        assert s.get("k2") == {"value": b"v"}


def test_version_tag_is_python_major_minor():
    major, minor = sys.version_info[:2]
    assert backlite.VERSION_TAG == f"python-{major}.{minor}"


def test_cache_is_dropped_when_the_python_minor_changes_not_otherwise(db, monkeypatch):
    with Storage(db) as s:
        s.set("k", {"value": b"v"})
    with Storage(db) as s:  # same Python: kept
        assert s.get("k") == {"value": b"v"}
    monkeypatch.setattr(backlite.storage, "VERSION_TAG", "python-3.99")
    with Storage(db) as s:  # another minor: pickles may not load, dropped
        assert s.get("k") is None
        s.set("k", {"value": b"new"})
    monkeypatch.undo()
    with Storage(db) as s:
        assert s.get("k") is None


def test_get_value_and_set_value(storage):
    storage.set_value("k", b"v")
    assert storage.get_value("k") == b"v"
    assert storage.get("k") == {"value": b"v"}
    storage.set_value("k", b"w", expiration=timedelta(seconds=60))
    assert storage.get("k")["expiration"] <= timedelta(seconds=60)
    assert storage.get_value("missing") is None


def test_threads_share_one_storage(storage):
    import threading

    errors = []

    def worker(t):
        try:
            for i in range(300):
                storage.set(f"t{t}-{i}", {"value": f"{t}:{i}".encode()})
                assert storage.get(f"t{t}-{i}") == {"value": f"{t}:{i}".encode()}
                storage.get("absent")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    st = storage.stats()
    assert st.count == 2400
    assert st.hits == 2400 and st.misses == 2400


def test_processes_share_one_file(db):
    import multiprocessing as mp

    from helpers import worker_set_keys

    Storage(db).close()  # created before the workers race to open it
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        seen = pool.starmap(worker_set_keys, [(db, w, 200) for w in range(4)])
    assert seen == [200] * 4
    with Storage(db) as s:
        keys = s.get_keys()
        assert len(keys) == 801
        assert s.get("shared")["value"] in {b"0", b"1", b"2", b"3"}
        for w in range(4):
            assert s.get(f"w{w}-199") == {"value": f"{w}:199".encode()}


def test_check_and_vacuum(storage):
    storage.set_many({f"k{i}": {"value": b"v" * 50} for i in range(100)})
    for i in range(50):
        storage.delete(f"k{i}")
    report = storage.check()
    assert isinstance(report, backlite.CheckReport)
    assert report.healthy and report.integrity_ok and not report.repaired
    assert report.entries == report.actual_count == report.recorded_count == 50
    assert report.damaged == 0
    assert report.actual_total_size == 2500
    storage.vacuum()
    assert storage.check(repair=True).healthy
    assert len(storage.get_keys()) == 50


def test_check_of_a_file_sqlite_cannot_walk_is_a_report(db):
    # As backlite_storage_check answers (and `backlite check`): the finding is a damaged
    # file, not a failure to check it; it raised CorruptError.
    with Storage(db) as s:
        for r in range(20):
            s.set_many({f"k{r * 100 + i}": {"value": b"v" * 300} for i in range(100)})
        s.vacuum()
    if Path(db + "-wal").exists():
        pytest.skip("the -wal file stayed after the last handle closed")
    data = bytearray(Path(db).read_bytes())
    assert len(data) > 22 * 4096
    data[20 * 4096:22 * 4096] = b"\xde" * 8192
    Path(db).write_bytes(bytes(data))
    try:
        s = Storage(db)
    except backlite.BackLiteError:
        pytest.skip("this damage already fails the open")
    with s:
        for repair in (False, True):
            report = s.check(repair=repair)
            assert not report.healthy and not report.integrity_ok and not report.repaired
            assert report.entries == report.damaged == report.actual_count == 0


def test_a_storage_pickles_as_its_location_and_options(db):
    with Storage(db, size_limit=1234, eviction_policy="first-in-first-out",
                 default_expiration=timedelta(seconds=30)) as s:
        s.set("k", {"value": b"v"})
        with pickle.loads(pickle.dumps(s)) as again:
            assert again is not s
            assert (again.location, again.size_limit, again.eviction_policy) == (
                db, 1234, "first-in-first-out")
            assert again.default_expiration == timedelta(seconds=30)
            assert again.get("k")["value"] == b"v"
    with Storage(":memory:") as m, pytest.raises(TypeError):
        pickle.dumps(m)


class TaggedStorage(Storage):
    """A user's subclass, with a parameter and a method of its own."""

    def __init__(self, location, tag, **options):
        super().__init__(location, **options)
        self.tag = tag

    def tagged(self, key):
        return self.tag + self.get_value(key)


def test_a_storage_subclass_pickles_and_copies_as_itself(db):
    # It came back a plain Storage: without its attributes and methods.
    import copy

    with TaggedStorage(db, b"t:", size_limit=1234) as s:
        s.set_value("k", b"v")
        for again in (pickle.loads(pickle.dumps(s)), copy.copy(s), copy.deepcopy(s)):
            with again:
                assert type(again) is TaggedStorage and again is not s
                assert (again.tag, again.size_limit) == (b"t:", 1234)
                assert again.tagged("k") == b"t:v"


def _child_reads(storage, key):
    return storage.get(key)


def test_a_storage_can_be_sent_to_a_spawned_process(db):
    import multiprocessing as mp

    with Storage(db) as s:
        s.set("k", {"value": b"from parent"})
        with mp.get_context("spawn").Pool(1) as pool:
            assert pool.apply(_child_reads, (s, "k")) == {"value": b"from parent"}


def test_a_relative_location_stays_the_same_file_when_the_process_changes_folder(
    tmp_path, monkeypatch
):
    # A forked child opens the file again on first use, and another process opens it
    # from the pickle: both found a new, empty cache in the folder the process had
    # moved to (a daemon's chdir("/")), and the child's writes never reached the parent.
    import multiprocessing as mp

    (tmp_path / "opened_in").mkdir()
    (tmp_path / "moved_to").mkdir()
    monkeypatch.chdir(tmp_path / "opened_in")
    with Storage("cache.db") as s:
        s.set("parent", {"value": b"p"})
        monkeypatch.chdir(tmp_path / "moved_to")
        ctx = mp.get_context("fork")
        q = ctx.Queue()

        def child():
            try:
                q.put(s.get_value("parent"))
                s.set_value("child", b"c")
                q.put("ok")
            except BaseException as e:  # noqa: BLE001
                q.put(repr(e))

        p = ctx.Process(target=child)
        p.start()
        assert q.get(timeout=60) == b"p"
        assert q.get(timeout=60) == "ok"
        p.join(60)
        assert p.exitcode == 0
        assert s.get_value("child") == b"c"
        with pickle.loads(pickle.dumps(s)) as again:
            assert again.get_value("parent") == b"p"
    assert list((tmp_path / "moved_to").iterdir()) == []


def test_a_get_reentered_on_the_same_thread_reads_its_own_value(storage):
    # A finalizer may run inside a get (a garbage collection triggered by one of its
    # allocations) and make a get of its own on the same thread.
    import gc

    storage.set("outer", {"value": b"outer value"})
    storage.set("inner", {"value": b"inner value"})
    inner_reads = []

    class Reads:
        def __del__(self):
            inner_reads.append(storage.get("inner"))

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)  # every allocation of a container may collect
    try:
        outer_reads = []
        for _ in range(200):
            r = Reads()
            r.cycle = r  # freed only by a collection
            del r
            outer_reads.append(storage.get("outer"))
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert outer_reads == [{"value": b"outer value"}] * 200
    assert inner_reads == [{"value": b"inner value"}] * 200


def test_get_to_writes_a_large_value_to_a_file_in_bounded_chunks(storage):
    big = bytes(i * 131 % 256 for i in range(3 * 256 * 1024 + 5))
    storage.set_value("big", big)

    class Recorder(io.BytesIO):
        largest = 0

        def write(self, b):
            Recorder.largest = max(Recorder.largest, len(b))
            return super().write(b)

    out = Recorder()
    assert storage.get_to("big", out) is True
    assert out.getvalue() == big
    assert Recorder.largest <= 256 * 1024
    missing = io.BytesIO()
    assert storage.get_to("missing", missing) is False
    assert missing.getvalue() == b""


def test_get_to_reraises_what_the_file_raises(storage):
    storage.set_value("k", b"x" * 600_000)

    class Full(io.RawIOBase):
        def write(self, b):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        storage.get_to("k", Full())
    assert storage.get_value("k") == b"x" * 600_000


def test_get_to_writes_the_rest_after_a_short_write(storage):
    # A raw file's write may take fewer bytes than it is given and return how many
    # (io.RawIOBase: a pipe, a socket, a non-blocking file): the rest is written
    # again, so the file gets the whole value, never a piece of each chunk.
    big = bytes(i * 131 % 256 for i in range(3 * 256 * 1024 + 5))
    storage.set_value("big", big)

    class Dribble(io.RawIOBase):
        def __init__(self):
            super().__init__()
            self.got = bytearray()

        def writable(self):
            return True

        def write(self, b):
            taken = bytes(b[:1000])
            self.got += taken
            return len(taken)

    out = Dribble()
    assert storage.get_to("big", out) is True
    assert bytes(out.got) == big

    # A write that returns None (not a count, as many file-likes do) took it all.
    parts = []

    class Appender:
        def write(self, b):
            parts.append(bytes(b))

    assert storage.get_to("big", Appender()) is True
    assert b"".join(parts) == big

    class Liar(io.RawIOBase):
        def write(self, b):
            return len(b) + 1

    with pytest.raises(OSError, match="incorrect number of bytes"):
        storage.get_to("big", Liar())


def test_get_to_stops_at_a_write_that_takes_nothing(storage):
    # A write that returns 0 (a raw file that made no progress, or one returning 0 as
    # a status) was called again with the same bytes for ever: the copy hung.
    storage.set_value("k", b"x" * 1000)

    class Stuck(io.RawIOBase):
        calls = 0

        def write(self, b):
            Stuck.calls += 1
            if Stuck.calls > 1000:
                raise RuntimeError("called again and again with the same bytes")
            return 0

    with pytest.raises(OSError, match="took 0 of 1000 bytes"):
        storage.get_to("k", Stuck())
    assert Stuck.calls == 1
    assert storage.get_value("k") == b"x" * 1000


def _value_files(location: Path) -> list[Path]:
    return sorted(Path(f"{location}.values").glob("v*.blv"))


def test_a_value_above_the_file_threshold_lives_in_a_file_and_reads_back(tmp_path):
    location = tmp_path / "c.db"
    large = bytes(i * 31 % 256 for i in range(300 * 1024))
    with Storage(location, file_threshold=4096) as s:
        s.set_value("small", b"s" * 4095)
        assert _value_files(location) == []
        s.set_value("large", large)
        assert len(_value_files(location)) == 1
        assert s.get_value("large") == large
        assert s.get_value("small") == b"s" * 4095
        out = io.BytesIO()
        assert s.get_to("large", out) is True
        assert out.getvalue() == large
        # A pickled Storage opens with the same threshold.
        again = pickle.loads(pickle.dumps(s))
        assert again.file_threshold == 4096
        again.set_value("large2", large)
        assert len(_value_files(location)) == 2
        again.close()
        s.delete("large")
        assert len(_value_files(location)) == 1
    never = tmp_path / "never.db"
    with Storage(never, file_threshold=None) as s:
        s.set_value("large", large)
        assert s.get_value("large") == large
    assert not Path(f"{never}.values").exists()
    assert Storage.__init__.__kwdefaults__["file_threshold"] == backlite.FILE_THRESHOLD_DEFAULT


@pytest.mark.parametrize("bad", [0, -1, 2**63, 1.5, "64k", True])
def test_a_bad_file_threshold_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="file_threshold"):
        Storage(tmp_path / "c.db", file_threshold=bad)


def test_a_time_left_beyond_timedelta_max_reads_back_as_timedelta_max(storage):
    # A C, Go or Zig writer may give an item more time than a timedelta holds (up to
    # 2**63 - 1 ms), and timedelta.max itself is stored rounded up to whole
    # milliseconds: a get must not raise OverflowError for the rest of the item's life.
    storage._set_many([(b"from C", b"v", 2**62)])  # as backlite_storage_set_many
    storage.set("k", {"value": b"v", "expiration": timedelta.max})
    for key in ("from C", "k"):
        item = storage.get(key)
        assert item["value"] == b"v"
        assert timedelta.max - timedelta(days=1) < item["expiration"] <= timedelta.max


# A write waits for a lock: another process's (SQLite's busy handler) or, behind a
# thread of this process that waits for it, this process's turn to write. The busy
# timeout is an hour, so only Ctrl-C can end the wait before the holder lets go.
CTRL_C_WHILE_LOCKED = """
import os, signal, subprocess, sys, threading, time
from datetime import timedelta
import backlite

db, case = sys.argv[1], sys.argv[2]
if case == "a handler that does not raise":
    signal.signal(signal.SIGINT, lambda *_: print("handler ran", flush=True))
else:
    # As in a terminal: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
storage = backlite.Storage(db, busy_timeout=timedelta(hours=1))
storage.set("before", {"value": b"v"})
holder = subprocess.Popen(
    [sys.executable, "-c",
     "import sqlite3, sys\\n"
     "c = sqlite3.connect(sys.argv[1], isolation_level=None)\\n"
     "c.execute('BEGIN IMMEDIATE'); print('held', flush=True)\\n"
     "sys.stdin.readline(); c.execute('COMMIT')\\n", db],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert holder.stdout.readline() == "held\\n"


def blocked(tid, looks=5):
    # The thread sleeps or waits in the kernel (SQLite's busy sleeps, a condition
    # variable): seen ``looks`` times in a row, with the GIL free between the looks.
    for _ in range(looks):
        with open(f"/proc/self/task/{tid}/syscall") as f:
            if f.read().split()[0] not in ("35", "202", "230"):
                return False
        time.sleep(0.01)
    return True


def set_other(handle):
    try:
        handle.set("other", {"value": b"o"})
    except BaseException as e:
        print("the other set failed:", repr(e), flush=True)


def start_other(handle):
    other = threading.Thread(target=set_other, args=(handle,))
    other.start()
    while other.native_id is None or not blocked(other.native_id):
        time.sleep(0.01)
    return other


others = []
if case == "behind another handle of this process":
    # Its thread holds this process's turn to write while it waits for the holder's
    # lock.
    others.append(start_other(backlite.Storage(db, busy_timeout=timedelta(hours=1))))
elif "a thread of this handle" in case:
    # Its thread writes while it waits for the holder's lock: this set waits for it.
    others.append(start_other(storage))
main = threading.get_native_id()


def let_go():
    holder.stdin.write("\\n")
    holder.stdin.flush()
    holder.wait()


def tell_when_waiting():
    while not blocked(main):
        pass
    if case == "leading a thread of this handle":
        # This set leads the next group commit, which a third thread's set joins:
        # that set is not this one's to stop, and is stored once the lock is let go.
        others.append(start_other(storage))
    print("waiting", flush=True)
    if case == "a handler that does not raise":
        # Once the SIGINT came (the test says so), the wait goes on past a couple of
        # the busy handler's sleeps (at most 100 ms each) before the lock is let go.
        sys.stdin.readline()
        while not blocked(main, looks=20):
            pass
        let_go()


threading.Thread(target=tell_when_waiting, daemon=True).start()
try:
    storage.set("k", {"value": b"v"})
    print("stored", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
if case != "a handler that does not raise":
    let_go()
for other in others:
    other.join()
# The storage is usable after the interrupt.
storage.set("after", {"value": b"a"})
print(sorted(storage.get_keys()), flush=True)
"""


@pytest.mark.parametrize(
    "case",
    ["another process holds the lock", "behind another handle of this process",
     "behind a thread of this handle", "leading a thread of this handle",
     "a handler that does not raise"],
)
def test_ctrl_c_ends_a_write_waiting_for_a_lock(db, tmp_path, case):
    # A write waiting for a lock was blocked in SQLite's busy handler (or in the wait
    # for this process's turn), where Python's signal handlers never ran: Ctrl-C raised
    # KeyboardInterrupt only once the busy timeout ran out (30 s for busy_timeout=30 s;
    # here, an hour). A SIGINT handler other than Python's own may do anything, even
    # write to the cache: it runs once the call is out, which waits on, as before.
    script = tmp_path / "ctrl_c_locked.py"
    script.write_text(CTRL_C_WHILE_LOCKED)
    child = subprocess.Popen(
        [sys.executable, str(script), db, case],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert _line_within(child.stdout, 120) == "waiting\n", child.stderr.read()
        child.send_signal(signal.SIGINT)
        if case == "a handler that does not raise":
            child.stdin.write("\n")
            child.stdin.flush()
            # The write was not cut short (BusyError): it waited for the lock, then
            # the handler ran.
            assert sorted([_line_within(child.stdout, 120), _line_within(child.stdout, 120)]) == [
                "handler ran\n", "stored\n"], child.stderr.read()
            keys = ["after", "before", "k"]
        else:
            # Before the holder lets go: only Ctrl-C can end the wait.
            assert _line_within(child.stdout, 120) == "KeyboardInterrupt\n", "Ctrl-C did not end the wait"
            keys = ["after", "before"] + (["other"] if "another process" not in case else [])
        assert _line_within(child.stdout, 120) == f"{keys}\n"
        assert child.wait(timeout=120) == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _line_within(stream, seconds: float) -> str | None:
    """The next line of a child's output, or None if none comes within ``seconds`` (a
    bound against a hang, never a measure of speed)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return got[0] if got else None
