"""``@cached`` and ``@async_cached``: memoise a function's results in a Storage.

Values are pickled with the highest protocol. Keys are stable across processes and
runs (see ``_keys``). ``cached`` goes through the native memoiser (``_native``, over
the core's ``cached_call_exclusive``, or ``cached_call`` with a barrier): the function
and the barrier run from inside the core's call, and an exception raised in them is
kept and re-raised, as it was, once that call has returned. ``async_cached`` never runs
a storage call on the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import pickle
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from inspect import (
    Parameter,
    Signature,
    isasyncgenfunction,
    isawaitable,
    iscoroutinefunction,
    isgeneratorfunction,
    signature,
)
from typing import Any, Awaitable, Callable, Coroutine, ParamSpec, TypeVar, overload

from backlite import _keys
from backlite._native import LEASE_HELD, OK, Lease, expiration_ms
from backlite.storage import Storage
from backlite.types import ParamHashFunc

P = ParamSpec("P")
R = TypeVar("R")

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


# -- barriers -----------------------------------------------------------------------


def _sync_enter_exit(barrier: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """How to take and release a lock-like object: acquire()/release() (threading
    locks, semaphores, file locks) or a context manager."""
    acquire = getattr(barrier, "acquire", None)
    release = getattr(barrier, "release", None)
    if callable(acquire) and callable(release) and not asyncio.iscoroutinefunction(acquire):
        return acquire, release
    if hasattr(barrier, "__enter__") and hasattr(barrier, "__exit__"):
        return barrier.__enter__, lambda: barrier.__exit__(None, None, None)
    raise TypeError(
        f"a barrier is a lock-like object (acquire/release, or a context manager), "
        f"not {type(barrier).__name__}"
    )


def _is_async_barrier(barrier: Any) -> bool:
    return hasattr(barrier, "__aenter__") and hasattr(barrier, "__aexit__")


class _ThreadHeld:
    """Holds a sync barrier for an async caller without blocking the event loop: a
    thread of its own takes it, waits, and releases it, so thread-affine locks (RLock,
    per-thread file locks) are released by the thread that took them."""

    def __init__(self, barrier: Any) -> None:
        self._enter, self._exit = _sync_enter_exit(barrier)
        self._release = threading.Event()

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        acquired: asyncio.Future[None] = loop.create_future()
        self._released: asyncio.Future[None] = loop.create_future()

        def settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

        def tell(fut: asyncio.Future[None], exc: BaseException | None) -> bool:
            try:
                loop.call_soon_threadsafe(settle, fut, exc)
                return True
            except RuntimeError:  # the loop is closed
                return False

        def hold() -> None:
            try:
                self._enter()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                tell(acquired, exc)
                return
            if tell(acquired, None):
                self._release.wait()
            failure: BaseException | None = None
            try:
                self._exit()
            except BaseException as exc:  # noqa: BLE001
                failure = exc
            tell(self._released, failure)

        threading.Thread(target=hold, name="backlite-barrier", daemon=True).start()
        try:
            await acquired
        except BaseException:
            self._release.set()  # released as soon as (if ever) it is taken
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        await self._released


def _async_hold(barrier: Any) -> Any:
    return barrier if _is_async_barrier(barrier) else _ThreadHeld(barrier)


_RLOCKS = (type(threading.RLock()), threading._PyRLock)  # type: ignore[attr-defined]


def _owned_by_this_thread(barrier: Any) -> bool:
    """Whether ``barrier`` is a reentrant lock (an RLock, or a Condition over one) that
    this thread holds. ``cached`` takes it again; ``async_cached`` takes a sync barrier
    in a thread of its own, which waited for this one for ever. Held here, it is held
    for a computation that runs in this thread."""
    lock = barrier._lock if isinstance(barrier, threading.Condition) else barrier
    return isinstance(lock, _RLOCKS) and lock._is_owned()


class _Run:
    """One computation of an ``async_cached`` call: running until its function
    returns or raises. A task the function starts and does not await inherits the
    context variables below (the keys being computed, the barriers held) and may run
    on after that: they count only while the run they came with runs, so such a
    task's later calls are memoised as any other's (before, its call of the key ran
    the function at once and stored nothing, and a barrier, held by someone else by
    then, was skipped)."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = True


def _inside(runs: dict[Any, _Run], what: Any) -> bool:
    run = runs.get(what)
    return run is not None and run.running


# The barriers held by the computations running in this thread (cached) or task
# (async_cached, and the tasks it starts while it runs), by id, with who holds each
# (_held_in_thread) or the computation holding it (async_cached). A memoised call
# made from inside such a computation (fib(n) calling fib(n - 1) on a miss) does not
# take its barrier again: it waited for its own outer call for ever (cached with a
# Lock; async_cached with any lock, a sync one being taken by a thread of its own, so
# even an RLock was another thread's).
_held: threading.local = threading.local()
_held_async: contextvars.ContextVar[dict[int, _Run]] = contextvars.ContextVar(
    "backlite_barriers", default={}
)


def _held_in_thread() -> dict[int, list[bool]]:
    """The barriers this thread's computations hold: for each, whether each holder,
    outermost first, took it itself (False: a holder it was made inside did)."""
    try:
        return _held.barriers
    except AttributeError:
        _held.barriers = {}
        return _held.barriers


def _held_by_caller(ident: int) -> bool:
    """Whether a computation the caller runs inside holds the barrier ``ident``: one
    of this thread's (cached, or an event loop run from inside one), or of this task's
    (async_cached, or a sync function it calls, in this thread or through
    ``asyncio.to_thread``). A barrier shared by sync and async functions that call
    each other was otherwise waited for by its own holder, for ever."""
    return bool(_held_in_thread().get(ident)) or _inside(_held_async.get(), ident)


def _unless_held(
    barrier: Any, enter: Callable[[], Any], exit: Callable[[], Any]
) -> tuple[Callable[[], None], Callable[[], None]]:
    """``enter`` and ``exit`` of ``barrier``, skipped where a computation the caller
    runs inside already holds it."""
    ident = id(barrier)

    def take() -> None:
        mine = not _held_by_caller(ident)
        if mine:
            enter()
        _held_in_thread().setdefault(ident, []).append(mine)

    def give_back() -> None:
        holders = _held_in_thread().get(ident, [True])
        mine = holders.pop() if holders else True
        if not holders:
            _held_in_thread().pop(ident, None)
        if mine:
            exit()

    return take, give_back


# -- sync -----------------------------------------------------------------------------

# How long cached_call_exclusive waits for another caller computing the same key.
_EXCLUSIVE_WAIT_MS = 60_000

# The keys a memoised call is computing in this thread (cached) or task (async_cached,
# and the tasks it starts): a call of one of them from inside its own computation (a
# recursion with the same arguments) would wait for itself. It runs the function, as
# the original did (it took no lock); the outer call stores its own result.
_computing: threading.local = threading.local()
_computing_async: contextvars.ContextVar[dict[bytes, _Run]] = contextvars.ContextVar(
    "backlite_computing", default={}
)


# The signature of a function that declares none: any arguments, keyed as given.
_AS_GIVEN = Signature(
    [Parameter("args", Parameter.VAR_POSITIONAL), Parameter("kwargs", Parameter.VAR_KEYWORD)]
)


def _make_key_func(
    func: Callable[..., Any], param_hash_func: ParamHashFunc | None
) -> Callable[[tuple[Any, ...], dict[str, Any]], bytes]:
    # The signature of what is called, not of what it wraps (functools.wraps'
    # __wrapped__): a decorator's own parameters (retries=) would not bind, and its
    # own defaults would give f(1) the key of f(1, y=<the wrapped one's default>).
    try:
        sig = signature(func, follow_wrapped=False)
    except ValueError:  # none of its own (a staticmethod object): what it wraps
        try:
            sig = signature(func)
        except ValueError:
            # None at all (math.log, max, struct.pack: C functions that declare none):
            # the arguments as given, as the original's hash(args, kwargs) took them.
            sig = _AS_GIVEN
    fid, watch = _keys.ClosureWatch.of(func)
    if param_hash_func is None:
        phash = _keys.make_param_hash(sig)
    else:
        phash = lambda args, kwargs: param_hash_func(sig, args, kwargs)  # noqa: E731
    prefix = f"backlite.memo:{fid}:"

    def key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return (prefix + phash(args, kwargs)).encode()

    if watch is None:
        return key
    function_id = watch.function_id

    def closure_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        # Its variables as they are now (see ClosureWatch).
        return f"backlite.memo:{function_id()}:{phash(args, kwargs)}".encode()

    return closure_key


def _key_helper(
    func: Callable[..., Any], wrapper: Callable[..., Any],
    make_key: Callable[[tuple[Any, ...], dict[str, Any]], bytes],
) -> Callable[..., bytes]:
    """The wrapper's ``cache_key``. Through an object (``obj.fetch.cache_key(5)``) it is
    the function's own attribute, and the object is not passed: with ``fetch(self,
    x=0)`` that was the key of ``self=5, x=0``, another call's, so a delete of it left
    the stale result. For a method written in a class (its first parameter ``self`` or
    ``cls``), a first argument whose class has neither the function nor its wrapper
    raises TypeError instead."""
    parts = str(getattr(func, "__qualname__", "")).split(".")
    try:
        params = list(signature(func, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        params = []
    first = params[0].name if params else None
    if (
        len(parts) < 2 or parts[-2] == "<locals>" or first not in ("self", "cls")
        or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    ):
        return lambda *args, **kwargs: make_key(args, kwargs)
    name = ".".join(parts[-2:])
    missing = object()

    def cache_key(*args: Any, **kwargs: Any) -> bytes:
        obj = args[0] if args else kwargs.get(first, missing)
        if obj is missing or not _has_method(obj, (func, wrapper)):
            got = "nothing" if obj is missing else f"{type(obj).__name__} {obj!r:.40}"
            raise TypeError(
                f"{name}.cache_key() takes the object first, as {first}: it got {got}. "
                f"Through an object, obj.{parts[-1]}.cache_key(...) is the function's own "
                f"attribute, without {first}: use {name}.cache_key(obj, ...)"
            )
        return make_key(args, kwargs)

    return cache_key


def _has_method(obj: Any, functions: tuple[Callable[..., Any], ...]) -> bool:
    """Whether a class of ``obj`` (``obj`` itself, for a class) holds one of
    ``functions``: as itself, in a classmethod, staticmethod or property, or under
    decorators that name what they wrap (``__wrapped__``)."""
    classes = type(obj).__mro__ + (obj.__mro__ if isinstance(obj, type) else ())
    for cls in classes:
        for value in vars(cls).values():
            todo = [value]
            for _ in range(8):  # a chain of decorators, bounded
                if not todo:
                    break
                v = todo.pop()
                if any(v is f for f in functions):
                    return True
                if isinstance(v, property):
                    todo.append(v.fget)
                    continue
                for attr in ("__func__", "__wrapped__"):
                    inner = getattr(v, attr, None)
                    if inner is not None:
                        todo.append(inner)
    return False


def _name(func: Callable[..., Any]) -> str:
    """A function's name in a message: its module and qualified name."""
    what = getattr(func, "__func__", func)
    return f"{getattr(what, '__module__', '?')}.{getattr(what, '__qualname__', repr(what))}"


def _runs(func: Callable[..., Any]) -> tuple[Any, ...]:
    """``func`` and what calling it runs when it is an object of a class with a
    ``__call__``: inspect tells an async or generator function only by that function
    (an object with ``async def __call__`` is no coroutine function to it)."""
    return func, getattr(type(func), "__call__", None)


def _refuse_generator_function(decorator: str, func: Callable[..., Any]) -> None:
    """A generator function's result is a generator, which cannot be pickled: memoised,
    every call ran nothing and raised pickle's "cannot pickle 'generator' object" (an
    async one, for async_cached, "can't be used in 'await' expression"). Refused when
    decorating, saying what to memoise instead."""
    if any(isgeneratorfunction(f) or isasyncgenfunction(f) for f in _runs(func)):
        kind = "an async generator" if any(map(isasyncgenfunction, _runs(func))) else "a generator"
        raise TypeError(
            f"{decorator}() cannot memoise {_name(func)}: it is {kind} "
            "function, whose result (an iterator) cannot be stored; memoise a function "
            "that returns the items as a list or tuple"
        )


def _outside(
    method: classmethod | staticmethod, decorator: Callable[..., Any], storage: Storage,
    barrier: Any, expiration: timedelta | None, param_hash_func: ParamHashFunc | None,
) -> Any:
    """A decorator put above ``@classmethod`` or ``@staticmethod``: the function they
    wrap is memoised and they go outside, so that it binds as written (the class, or
    nothing) and not as a plain function does (the object first)."""
    memoised = decorator(
        method.__func__, storage=storage, barrier=barrier, expiration=expiration,
        param_hash_func=param_hash_func,
    )
    return type(method)(memoised)


@overload
def cached(
    func: Callable[P, R],
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Callable[P, R]: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def cached(
    func: Callable[P, R] | None = None,
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Any:
    """Memoise ``func``'s results in ``storage``.

    Args:
        storage: where results are kept (pickled with the highest protocol).
        barrier: a lock-like object (``threading.Lock``, a file lock; acquire/release
            or a context manager) taken around the computation of a missing result,
            which is looked up again once the barrier is held.
        expiration: how long each result lives (default: the storage's default).
        param_hash_func: replaces the default hash of the arguments.
    """
    if not isinstance(storage, Storage):
        raise TypeError("cached(storage=...) takes a backlite.Storage")
    enter = exit = None
    if barrier is not None:
        try:
            enter, exit = _sync_enter_exit(barrier)
        except TypeError:
            if _is_async_barrier(barrier):
                raise TypeError(
                    "cached() takes a sync barrier (threading.Lock, a file lock); "
                    "use async_cached() with an async one"
                ) from None
            raise
    exp_ms = expiration_ms(expiration)
    if func is None:
        return functools.partial(
            cached,
            storage=storage,
            barrier=barrier,
            expiration=expiration,
            param_hash_func=param_hash_func,
        )
    if isinstance(func, (classmethod, staticmethod)):
        return _outside(func, cached, storage, barrier, expiration, param_hash_func)
    if any(map(iscoroutinefunction, _runs(func))):
        # Its result is a coroutine: never awaited here, never picklable.
        raise TypeError(
            f"cached() memoises plain functions; {_keys.function_id(func)} is async: "
            "use async_cached()"
        )
    _refuse_generator_function("cached", func)
    make_key = _make_key_func(func, param_hash_func)
    barrier_calls = None if barrier is None else _unless_held(barrier, enter, exit)
    cached_call = storage._cached_call

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(args, kwargs)
        try:
            computing = _computing.keys
        except AttributeError:
            computing = _computing.keys = set()
        if key in computing:
            # Inside its own computation: waiting for the key's lease, held by this very
            # call, waited 60 s for itself, then raised LeaseHeldError ("another owner").
            return func(*args, **kwargs)
        computing.add(key)
        try:
            return cached_call(
                key, func, args, kwargs, exp_ms, barrier_calls, _EXCLUSIVE_WAIT_MS
            )
        finally:
            computing.discard(key)

    wrapper.cache_key = _key_helper(func, wrapper, make_key)  # type: ignore[attr-defined]
    wrapper.storage = storage  # type: ignore[attr-defined]
    return wrapper


# -- async --------------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _reset_executor_after_fork() -> None:
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_executor_after_fork)


def _get_executor() -> ThreadPoolExecutor:
    """The threads that run storage calls for async callers: our own, so a busy
    default executor cannot stall them."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=min(8, (os.cpu_count() or 1) + 2),
                    thread_name_prefix="backlite",
                )
    return _executor


async def _off_loop(fn: Callable[..., R], *args: Any) -> R:
    return await asyncio.get_running_loop().run_in_executor(_get_executor(), fn, *args)


# -- leases: the library's stampede protection, one non-blocking step at a time ----


def _lease_step(storage: Storage, key: bytes, attempt: int) -> tuple[int, Any, Lease | None, float]:
    """One step of the library's wait for ``key``.
    (OK, value, None, 0): a hit. (NOT_FOUND, None, lease, 0): ours to compute.
    (LEASE_HELD, None, None, pause): another owner computes it; step again (attempt + 1)
    after ``pause`` seconds, the library's back-off."""
    rc, data, lease, pause = storage._lease_step(key, attempt)
    if rc == OK:
        try:
            return OK, pickle.loads(data), None, 0.0
        except Exception:  # noqa: BLE001 - unreadable: remove it and look again
            storage.delete(key)
            return LEASE_HELD, None, None, 0.0
    return rc, None, lease, pause


async def _step_off_loop(
    storage: Storage, key: bytes, attempt: int
) -> tuple[int, Any, Lease | None, float]:
    fut = asyncio.get_running_loop().run_in_executor(
        _get_executor(), _lease_step, storage, key, attempt
    )
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        # Cancelled while the call runs: a lease it obtains must not be left held.
        def abandon(f: asyncio.Future[tuple[int, Any, Lease | None, float]]) -> None:
            lease = None if f.cancelled() or f.exception() else f.result()[2]
            if lease is not None:
                _get_executor().submit(lease.abandon)

        fut.add_done_callback(abandon)
        raise


async def _compute_with_lease(
    storage: Storage, key: bytes, call: Callable[[], Awaitable[Any]], exp_ms: int,
    attempt: int = 0, name: str = "the function",
) -> Any:
    """Stampede-safe across threads and processes, with the library's timing: the
    lease owner computes (the library renews its lease meanwhile), the others sleep
    for the pause the library gives (asyncio.sleep: never blocking the loop) and step
    again, until the value is there or the lease is theirs. Only step 0 counts a
    miss: a caller that already looked starts at 1."""
    while True:
        rc, value, lease, pause = await _step_off_loop(storage, key, attempt)
        attempt += 1
        if rc == OK:
            return value
        if lease is not None:
            try:
                result = await call()
                try:
                    data = pickle.dumps(result, protocol=_PICKLE_PROTOCOL)
                except Exception as exc:
                    # pickle names the object, not that it was this function's result.
                    exc.add_note(
                        f"async_cached(): the result of {name} (a {type(result).__name__}) "
                        "cannot be pickled, so it was not stored; memoise a function that "
                        "returns a picklable value"
                    )
                    raise
            except BaseException:
                # Off the loop, not awaited: a cancelled task still releases it.
                _get_executor().submit(lease.abandon)
                raise
            await _off_loop(lease.fulfill, data, exp_ms)
            return result
        await asyncio.sleep(pause)


@overload
def async_cached(
    func: Callable[P, Awaitable[R]],
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Callable[P, Coroutine[None, None, R]]: ...


@overload
def async_cached(
    func: None = None,
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[None, None, R]]]: ...


def async_cached(
    func: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    storage: Storage,
    barrier: Any = None,
    expiration: timedelta | None = None,
    param_hash_func: ParamHashFunc | None = None,
) -> Any:
    """Memoise an async function's results in ``storage``.

    Storage calls run in a small thread pool, never on the event loop. Concurrent
    callers of the same key in one event loop wait for one computation; with the
    library's lease API, so do callers in other threads and processes.

    Args:
        storage: where results are kept (pickled with the highest protocol).
        barrier: a sync (``threading.Lock``, a file lock) or async (``asyncio.Lock``)
            lock-like object taken around the computation of a missing result. A sync
            one is waited for in a thread, never on the loop.
        expiration: how long each result lives (default: the storage's default).
        param_hash_func: replaces the default hash of the arguments.
    """
    if not isinstance(storage, Storage):
        raise TypeError("async_cached(storage=...) takes a backlite.Storage")
    if barrier is not None and not _is_async_barrier(barrier):
        _sync_enter_exit(barrier)  # fails now, not at the first miss
    exp_ms = expiration_ms(expiration)
    if func is None:
        return functools.partial(
            async_cached,
            storage=storage,
            barrier=barrier,
            expiration=expiration,
            param_hash_func=param_hash_func,
        )
    if isinstance(func, (classmethod, staticmethod)):
        return _outside(func, async_cached, storage, barrier, expiration, param_hash_func)
    _refuse_generator_function("async_cached", func)
    make_key = _make_key_func(func, param_hash_func)
    compute = _compute_with_lease
    name = _name(func)
    # Computations in flight, per event loop and key: later callers wait for them.
    flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bytes, asyncio.Future[None]]]
    flights = weakref.WeakKeyDictionary()

    async def look_or_compute(
        key: bytes, call: Callable[[], Awaitable[Any]], run: _Run
    ) -> Any:
        # The first step looks the key up (a hit returns at once) and counts the miss.
        if barrier is None:
            return await compute(storage, key, call, exp_ms, 0, name)
        # As cached(): a hit never waits for the barrier. A lease won by this first
        # look is given back before the barrier is awaited: holding it there would
        # let a barrier holder of another process wait on us while we wait on it.
        rc, value, lease, _ = await _step_off_loop(storage, key, 0)
        if rc == OK:
            return value
        if lease is not None:
            await _off_loop(lease.abandon)
        held = _held_async.get()
        if _held_by_caller(id(barrier)) or _owned_by_this_thread(barrier):  # see _held
            return await compute(storage, key, call, exp_ms, 1, name)
        async with _async_hold(barrier):
            token = _held_async.set({**held, id(barrier): run})
            try:
                return await compute(storage, key, call, exp_ms, 1, name)
            finally:
                _held_async.reset(token)

    async def flight(
        key: bytes, loop: asyncio.AbstractEventLoop, in_flight: dict[bytes, asyncio.Future[None]],
        call: Callable[[], Awaitable[Any]], run: _Run,
    ) -> Any:
        leader = in_flight.get(key)
        if leader is not None:
            # Callers of one event loop let its first caller look (and compute) alone,
            # then look themselves: a hit, or the library's wait if it failed.
            await asyncio.wait([leader])
            return await look_or_compute(key, call, run)
        done: asyncio.Future[None] = loop.create_future()
        in_flight[key] = done
        try:
            return await look_or_compute(key, call, run)
        finally:
            del in_flight[key]
            done.set_result(None)

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(args, kwargs)
        loop = asyncio.get_running_loop()
        in_flight = flights.setdefault(loop, {})
        run = _Run()

        async def call() -> Any:
            try:
                awaitable = func(*args, **kwargs)
                if not isawaitable(awaitable):
                    # A plain function's result, awaited, raised "object int can't be
                    # used in 'await' expression", which named neither the function
                    # nor the fix.
                    raise TypeError(
                        f"async_cached() memoises async functions: {_name(func)} "
                        f"returned {type(awaitable).__name__}, not an awaitable; use cached()"
                    )
                return await awaitable
            finally:
                run.running = False

        computing = _computing_async.get()
        if _inside(computing, key):
            # Inside its own computation: it waited for itself (as a later caller of
            # this loop, for its own flight), for ever.
            return await call()
        token = _computing_async.set({**computing, key: run})
        try:
            return await flight(key, loop, in_flight, call, run)
        finally:
            run.running = False
            _computing_async.reset(token)

    wrapper.cache_key = _key_helper(func, wrapper, make_key)  # type: ignore[attr-defined]
    wrapper.storage = storage  # type: ignore[attr-defined]
    return wrapper
