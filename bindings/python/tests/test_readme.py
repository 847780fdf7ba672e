"""The seed README's examples, run as written (copied verbatim below), in order, in one
namespace, as a reader pasting them into one session would. time.sleep and
asyncio.sleep are shortened so the suite stays fast."""

from __future__ import annotations

import asyncio
import time

import pytest

DECORATORS = '''
import time

from backlite import Storage
from backlite import cached

storage = Storage("cache.db")


@cached(storage=storage)
def expensive_function(x, y):
    time.sleep(2)  # Simulate an expensive computation
    return x + y


expensive_function(1, 2)  # slow
expensive_function(1, 2)  # fast (cached)
expensive_function(3, 4)  # slow
'''

BARRIERS = '''
from backlite import Storage, cached
from threading import Lock

storage = Storage("cache.db")
lock = Lock()

@cached(storage=storage, barrier=lock)
def expensive_function(x, y):
    time.sleep(2)  # Simulate an expensive computation
    return x + y
'''

ASYNC = '''
from backlite import Storage, async_cached

storage = Storage("cache.db")


@async_cached(storage=storage)
async def expensive_function(x, y):
    await asyncio.sleep(2)  # Simulate an expensive computation
    return x + y
'''

MAX_SIZE = '''
from backlite import Storage

cache = Storage("cache.db", max_size=1024**3)
'''

EVICTION_POLICY = '''
from backlite import Storage

cache = Storage("cache.db", eviction_policy="least-frequently-used")
'''

DIRECT = '''
from backlite import Storage

storage = Storage("cache.db")

# Store a value
storage.set("key", {"value": b"value"})

# Retrieve a value
assert storage.get("key") == {"value": b"value"}
'''

EXPIRATION = '''
from datetime import timedelta

from backlite import Storage

storage = Storage("cache.db")

# Store a value with an expiration time
storage.set("key", {"value": b"value", "expiration": timedelta(seconds=60)})
'''


@pytest.fixture
def session(tmp_path, monkeypatch):
    """One namespace for all the blocks, in a fresh folder; sleeps recorded, not slept."""
    monkeypatch.chdir(tmp_path)
    slept = []
    real_async_sleep = asyncio.sleep

    def fake_sleep(seconds):
        slept.append(seconds)

    async def fake_async_sleep(seconds, *a, **k):
        slept.append(seconds)
        await real_async_sleep(0)

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    ns = {"__name__": "readme"}
    yield ns, slept
    for value in list(ns.values()):
        close = getattr(value, "close", None)
        if type(value).__name__ == "Storage" and close:
            close()


def test_readme_examples_in_order(session, tmp_path):
    ns, slept = session

    exec(DECORATORS, ns)
    # slow, fast (cached), slow: two computations
    assert slept == [2, 2]
    assert ns["expensive_function"](1, 2) == 3
    assert ns["expensive_function"](3, 4) == 7
    assert slept == [2, 2]

    exec(BARRIERS, ns)
    # Same module and name as the first expensive_function, but another definition:
    # its code is compiled apart (its block imports no `time`, so CPython calls
    # time.sleep as a method), and a function's code is in its key, so that an edited
    # function does not return its old body's results. It computes its own.
    assert ns["expensive_function"](1, 2) == 3
    assert slept == [2, 2, 2]
    assert ns["expensive_function"](1, 2) == 3
    assert ns["expensive_function"](5, 6) == 11
    assert slept == [2, 2, 2, 2]
    assert not ns["lock"].locked()

    # The README's async block uses asyncio without importing it (it relies on the
    # reader's session); give it the module, as such a session would have.
    ns["asyncio"] = asyncio
    exec(ASYNC, ns)

    async def main():
        return [await ns["expensive_function"](10, 20), await ns["expensive_function"](10, 20)]

    assert asyncio.run(main()) == [30, 30]
    # (the library's own lease heartbeat sleeps too: count the README's 2 s only)
    assert [s for s in slept if s == 2] == [2, 2, 2, 2, 2]

    exec(MAX_SIZE, ns)
    assert ns["cache"].stats().max_size == 1024**3

    exec(EVICTION_POLICY, ns)
    assert ns["cache"].eviction_policy == "least-frequently-used"

    exec(DIRECT, ns)

    exec(EXPIRATION, ns)
    item = ns["storage"].get("key")
    assert item["value"] == b"value"
    assert 0 < item["expiration"].total_seconds() <= 60
    assert (tmp_path / "cache.db").exists()


@pytest.mark.parametrize("block", [DECORATORS, BARRIERS, MAX_SIZE, EVICTION_POLICY, DIRECT, EXPIRATION])
def test_each_block_runs_on_its_own(session, block):
    ns, _ = session
    ns["time"] = time  # BARRIERS uses time from the block before it
    exec(block, ns)


def test_seed_readme_cached_results_survive_a_new_storage_object(session):
    ns, slept = session
    exec(DECORATORS, ns)
    assert slept == [2, 2]
    # A new process would create a new Storage on the same file; the keys are stable.
    ns2 = {"__name__": "readme"}
    exec(DECORATORS, ns2)
    assert slept == [2, 2]
    ns2["storage"].close()
