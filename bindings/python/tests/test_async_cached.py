"""async_cached. pytest-asyncio is not required: each test runs its own loop."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

import backlite
from backlite import Storage, async_cached, decorators


def run(coro):
    return asyncio.run(coro)


def test_async_cached_function_computes_once_per_arguments(storage):
    call_count = 0

    @async_cached(storage=storage)
    async def expensive_function(_: int) -> None:
        nonlocal call_count
        call_count += 1

    async def main():
        await expensive_function(1)
        assert call_count == 1
        await expensive_function(1)
        assert call_count == 1
        await expensive_function(2)
        assert call_count == 2

    run(main())


def test_async_methods_of_a_class_defined_in_a_function_are_cached(storage):
    # Its instances cannot be pickled: `self` is keyed by identity, as in cached().
    calls = []

    class Client:
        @async_cached(storage=storage)
        async def fetch(self, x):
            calls.append(x)
            return x * 2

    async def main():
        client = Client()
        assert await client.fetch(3) == 6
        assert await client.fetch(3) == 6

    run(main())
    assert calls == [3]


def test_async_and_sync_callers_share_keys_by_signature(storage):
    calls = []

    @async_cached(storage=storage)
    async def f(x, y=1):
        calls.append(x)
        return [x, y]

    async def main():
        assert await f(1) == [1, 1]
        assert await f(x=1, y=1) == [1, 1]

    run(main())
    assert calls == [1]


def test_async_cached_with_sync_barrier_waits_without_blocking_the_loop(storage):
    lock = threading.Lock()
    lock.acquire()
    calls = []

    @async_cached(storage=storage, barrier=lock)
    async def f(x):
        calls.append(x)
        return x

    async def main():
        task = asyncio.ensure_future(f(1))
        # The loop keeps running while the barrier is held elsewhere.
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20
        assert not task.done()
        assert calls == []
        lock.release()
        assert await task == 1
        assert calls == [1]

    run(main())
    assert not lock.locked()


def test_async_cached_with_async_barrier(storage):
    lock = asyncio.Lock()
    calls = []

    @async_cached(storage=storage, barrier=lock)
    async def f(x):
        assert lock.locked()
        calls.append(x)
        return x * 2

    async def main():
        assert await f(2) == 4
        assert await f(2) == 4

    run(main())
    assert calls == [2]


class _CountingLock:
    """A lock that counts how often it is taken."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0

    def acquire(self) -> bool:
        self.taken += 1
        return self.lock.acquire()

    def release(self) -> None:
        self.lock.release()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_hit_never_takes_the_barrier(storage, kind):
    # As cached() and C's cached_call: the barrier guards a computation, so a hit
    # returns without waiting for it (a barrier held for another key's long
    # computation must not stall every hit). One miss, then one hit, in the stats.
    counting = _CountingLock()
    if kind == "sync":
        barrier = counting
    else:
        class barrier:  # noqa: N801 - an async lock counting its acquisitions
            async def __aenter__(self):
                counting.taken += 1

            async def __aexit__(self, *exc):
                pass
        barrier = barrier()
    calls = []

    @async_cached(storage=storage, barrier=barrier)
    async def f(x):
        calls.append(x)
        return x

    async def main():
        assert await f(1) == 1
        assert await f(1) == 1

    run(main())
    assert calls == [1]
    assert counting.taken == 1
    st = storage.stats()
    assert (st.misses, st.hits) == (1, 1)


def test_seed_scenario_sync_barrier_held_while_another_loop_waits(storage):
    # The seed's test: a thread runs its own loop and waits for the barrier.
    lock = threading.Lock()
    lock.acquire()
    call_count = 0

    @async_cached(storage=storage, barrier=lock)
    async def expensive_function(_: int) -> None:
        nonlocal call_count
        call_count += 1

    thread = threading.Thread(target=asyncio.run, args=(expensive_function(1),))
    thread.start()
    thread.join(0.1)
    assert call_count == 0
    lock.release()
    thread.join()
    assert call_count == 1


def test_thread_affine_barrier_is_released_by_the_thread_that_took_it(storage):
    lock = threading.RLock()  # release() from another thread raises RuntimeError

    @async_cached(storage=storage, barrier=lock)
    async def f(x):
        return x

    async def main():
        assert await f(1) == 1
        assert await f(2) == 2

    run(main())
    assert lock.acquire(blocking=False)
    lock.release()


@pytest.mark.parametrize("make", [threading.RLock, lambda: threading.Condition(threading.RLock())],
                         ids=["RLock", "Condition over an RLock"])
def test_a_reentrant_barrier_the_loops_thread_holds_is_held_already(storage, make):
    # As cached() takes it again: the thread running the loop holds the lock (a `with`
    # around asyncio.run), so it is held for the computation, which runs in that thread.
    # It was taken by a thread of its own, which waited for the loop's thread for ever.
    lock = make()

    @async_cached(storage=storage, barrier=lock)
    async def f(x):
        return x * 2

    async def main():
        return await asyncio.wait_for(f(21), 30)

    with lock:
        assert run(main()) == 42
    assert lock.acquire(blocking=False)  # given back as often as taken
    lock.release()
    taken, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            taken.set()
            done.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait()
    try:
        # Held by another thread: waited for, not skipped.
        with pytest.raises(asyncio.TimeoutError):
            run(asyncio.wait_for(f(22), 0.5))
    finally:
        done.set()
        holder.join()


def test_storage_calls_never_run_on_the_event_loop_thread(storage, monkeypatch):
    threads = []
    real_step = decorators._lease_step

    def step(*a):
        threads.append(threading.get_ident())
        return real_step(*a)

    monkeypatch.setattr(decorators, "_lease_step", step)

    @async_cached(storage=storage)
    async def f(x):
        return x

    async def main():
        loop_thread = threading.get_ident()
        await f(1)
        await f(1)
        return loop_thread

    loop_thread = run(main())
    assert len(threads) >= 2
    assert loop_thread not in threads


def test_concurrent_callers_in_one_loop_compute_once(storage):
    calls = []

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        await asyncio.sleep(0.05)
        return {"x": x}

    async def main():
        return await asyncio.gather(*[f(3) for _ in range(20)], f(4))

    results = run(main())
    assert results == [{"x": 3}] * 20 + [{"x": 4}]
    assert sorted(calls) == [3, 4]


def test_concurrent_loops_in_threads_compute_once(storage):
    calls = []
    start = threading.Barrier(6)

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        await asyncio.sleep(0.2)
        return x + 1

    results = []

    def worker():
        start.wait()
        results.append(asyncio.run(f(10)))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [11] * 6
    assert calls == [10]


def test_concurrent_processes_compute_once(db, tmp_path):
    import multiprocessing as mp

    from helpers import count, worker_async_slow_square

    log = str(tmp_path / "log")
    ctx = mp.get_context("spawn")
    start_at = time.time() + 1.5
    with ctx.Pool(4) as pool:
        results = pool.starmap(worker_async_slow_square, [(db, log, start_at)] * 4)
    assert results == [49] * 4
    assert count(log) == 1


def test_exception_is_reraised_and_the_next_caller_computes_at_once(storage):
    calls = []

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        if len(calls) == 1:
            raise LookupError("first fails")
        return x

    async def main():
        with pytest.raises(LookupError, match="first fails"):
            await f(1)
        # the lease was abandoned: no waiting for it to run out (30 s)
        assert await asyncio.wait_for(f(1), timeout=20) == 1

    run(main())
    assert calls == [1, 1]
    assert storage.get_keys() == {f.cache_key(1).decode()}


def test_waiters_compute_when_the_leader_fails(storage):
    calls = []

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        await asyncio.sleep(0.02)
        if len(calls) == 1:
            raise LookupError("leader fails")
        return x

    async def main():
        return await asyncio.gather(f(1), f(1), f(1), return_exceptions=True)

    results = run(main())
    assert sum(isinstance(r, LookupError) for r in results) == 1
    assert [r for r in results if not isinstance(r, LookupError)] == [1, 1]
    assert calls == [1, 1]


def test_cancelled_computation_releases_its_lease(storage):
    started = []

    @async_cached(storage=storage)
    async def f(x):
        started.append(x)
        if len(started) == 1:
            await asyncio.sleep(3600)
        return x

    async def main():
        task = asyncio.ensure_future(f(1))
        while not started:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Another caller is not kept waiting for the cancelled one's lease.
        return await asyncio.wait_for(f(1), timeout=20)

    assert run(main()) == 1
    assert started == [1, 1]


def test_a_failed_computation_leaves_no_lease_behind(storage, db):
    @async_cached(storage=storage)
    async def f(x):
        raise RuntimeError("no")

    async def main():
        with pytest.raises(RuntimeError):
            await f(1)

    run(main())
    # Wait until the abandon submitted to the pool has run (a no-op submitted after it
    # may finish first on another worker); the next call makes a new pool.
    decorators._get_executor().shutdown(wait=True)
    decorators._executor = None
    with Storage(db) as other:
        rc, _, lease, _ = decorators._lease_step(other, f.cache_key(1), 0)
        assert rc == backlite._native.NOT_FOUND  # free to compute, not LEASE_HELD
        lease.abandon()


def test_an_unpicklable_result_raises_names_the_function_and_is_not_stored(storage):
    calls = []

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        return threading.Lock()

    async def main():
        for _ in range(2):  # the lease abandoned: the second call computes at once
            with pytest.raises(TypeError) as raised:
                await asyncio.wait_for(f(1), timeout=20)
            # pickle's own message names the lock, not the function whose result it was
            assert raised.value.__notes__ == [
                f"async_cached(): the result of {__name__}.test_an_unpicklable_result_raises"
                f"_names_the_function_and_is_not_stored.<locals>.f (a "
                f"{type(threading.Lock()).__name__}) cannot be pickled, so it was not stored; "
                "memoise a function that returns a picklable value"
            ]

    run(main())
    assert calls == [1, 1]
    assert storage.get_keys() == set()


def test_a_computation_outliving_the_lease_length_is_computed_once(tmp_path):
    # The library renews the lease while the coroutine computes; another process (a
    # second handle here, in a thread with its own loop) waits and gets the value.
    path = str(tmp_path / "renew.db")
    calls = []
    with Storage(path, lease_length=timedelta(milliseconds=300)) as a, Storage(
        path, lease_length=timedelta(milliseconds=300)
    ) as b:
        computing = threading.Event()

        @async_cached(storage=a)
        async def slow(x):
            calls.append("a")
            computing.set()
            await asyncio.sleep(1.5)  # five lease lengths
            return "from a"

        results = []
        t = threading.Thread(target=lambda: results.append(asyncio.run(slow(1))))
        t.start()
        assert computing.wait(10)
        assert b.stats().misses == 0
        got = asyncio.run(_same_key_call(b, slow.cache_key(1)))
        t.join()
        assert results == ["from a"]
        assert got == "from a"
        assert calls == ["a"]
        assert b.stats().misses == 1  # one wait, one miss


async def _same_key_call(storage, key):
    def fail():
        raise AssertionError("computed while the lease was held")

    async def compute():
        fail()

    return await decorators._compute_with_lease(storage, key, compute, -1)


def test_a_held_lease_is_lease_held_error_with_its_time_left(storage, db):
    from backlite import LeaseHeldError

    with Storage(db) as other:
        rc, _, lease, _ = decorators._lease_step(other, b"k", 0)
        assert rc == backlite._native.NOT_FOUND
        try:
            rc, _, none, pause = decorators._lease_step(storage, b"k", 0)
            assert (rc, none) == (backlite._native.LEASE_HELD, None)
            assert 0 < pause <= 0.05
            # The blocking memoiser (waiting 0 ms here) gives up with LeaseHeldError and
            # the time left.
            def never():
                raise AssertionError("computed while the lease was held")

            with pytest.raises(LeaseHeldError) as info:
                storage._cached_call(b"k", never, (), None, -1, None, 0)
            assert info.value.code == 14
            assert 0 < info.value.time_left <= 30
        finally:
            lease.abandon()


def test_async_expiration_per_decorator(storage):
    calls = []

    @async_cached(storage=storage, expiration=timedelta(0))
    async def f(x):
        calls.append(x)
        return x

    async def main():
        await f(1)
        await f(1)

    run(main())
    assert calls == [1, 1]

    @async_cached(storage=storage, expiration=timedelta(seconds=60))
    async def g(x):
        return x

    run(g(1))
    assert storage.get(g.cache_key(1))["expiration"] <= timedelta(seconds=60)


def test_async_values_are_readable_by_the_sync_decorator(storage):
    @async_cached(storage=storage)
    async def compute(x):
        return {"n": x}

    run(compute(5))
    (key,) = storage.get_keys()
    import pickle

    assert pickle.loads(storage.get(key)["value"]) == {"n": 5}


def test_async_cached_refuses_a_non_lock_barrier(storage):
    with pytest.raises(TypeError):
        async_cached(storage=storage, barrier=object())


def test_async_unreadable_value_is_recomputed(storage):
    @async_cached(storage=storage)
    async def f(x):
        return x * 3

    storage.set(f.cache_key(2), {"value": b"garbage"})
    assert run(f(2)) == 6
    assert run(f(2)) == 6


def test_async_cached_refuses_generator_functions_and_names_a_sync_function(storage):
    # An async generator, awaited, raised "object async_generator can't be used in
    # 'await' expression" at each call; a plain function's result "object int ...".
    async def anumbers(n):
        yield n

    def numbers(n):
        yield from range(n)

    for func in (anumbers, numbers):
        with pytest.raises(TypeError, match=r"cannot memoise .*numbers: it is an? (async )?generator function"):
            async_cached(storage=storage)(func)

    calls = []

    def plain(x):
        calls.append(x)
        return x + 1

    memoised = async_cached(storage=storage)(plain)
    for _ in range(2):
        with pytest.raises(TypeError, match=r"async_cached\(\) memoises async functions: .*plain returned int, not an awaitable; use cached\(\)"):
            run(memoised(1))
    # Nothing stored, and no lease left behind: each call ran the function again.
    assert calls == [1, 1]
    assert storage.get_keys() == set()

    async def main():
        return await memoised2(2)

    # A plain function returning an awaitable is still memoised.
    async def double(x):
        return 2 * x

    memoised2 = async_cached(storage=storage)(lambda x: double(x))
    assert run(main()) == 4
    assert run(main()) == 4


def test_a_call_of_the_key_being_computed_from_inside_its_computation_runs_it(storage):
    # f(1) awaiting f(1) (a recursion with the same arguments) waited for its own
    # flight in this loop: for ever. It runs the function, as the original did; the
    # outer call stores its own result. A task the computation starts and awaits is
    # inside it too.
    calls = []

    @async_cached(storage=storage)
    async def f(x):
        calls.append(x)
        if len(calls) == 1:
            return await f(x) + 1
        if len(calls) == 2:
            return await asyncio.create_task(f(x)) + 1
        return x

    async def main():
        # A bound against a hang, not a measure of speed.
        first = await asyncio.wait_for(f(1), 120)
        return first, await f(1)

    assert asyncio.run(main()) == (3, 3)
    assert calls == [1, 1, 1]



class _CountingBarrier:
    """An asyncio.Lock that counts the callers waiting to take it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.waiting = 0

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()


def test_a_task_the_computation_leaves_running_calls_as_any_other_once_it_returned(storage):
    # A task started in the computation and not awaited inherits the keys being
    # computed and the barriers held (context variables), and may run on after the
    # computation has returned: it is inside it only until then. Before, its call of
    # the key ran the function at once, stored nothing and returned its own value
    # ("late"), and its call of another key under the barrier skipped the barrier,
    # held by another caller by then, for as long as the task lived.
    barrier = _CountingBarrier()
    calls = []
    late = []
    held_by_test = False

    async def later(fn, x):
        await gate.wait()
        return await fn(x)

    @async_cached(storage=storage)
    async def f(x):
        calls.append(("f", x))
        if len(calls) == 1:
            late.append(asyncio.create_task(later(f, x)))
            return "outer"
        return "late"

    @async_cached(storage=storage, barrier=barrier)
    async def g(x):
        calls.append(("g", x, held_by_test))
        if x == 1:
            late.append(asyncio.create_task(later(g, 2)))
        return f"g{x}"

    async def main():
        nonlocal gate, held_by_test
        gate = asyncio.Event()
        assert await f(1) == "outer"
        assert await g(1) == "g1"
        late_f, late_g = late
        async with barrier.lock:
            held_by_test = True
            gate.set()
            first = await late_f
            # g(2) either waits for the barrier, or (before) ran without it.
            while not (late_g.done() or barrier.waiting):
                await asyncio.sleep(0.001)
            held_by_test = False
        return first, await late_g

    gate = None
    # A bound against a hang, not a measure of speed.
    assert asyncio.run(asyncio.wait_for(main(), 120)) == ("outer", "g2")
    assert calls == [("f", 1), ("g", 1, False), ("g", 2, False)]
