from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from backlite import Storage, async_cached, cached


def test_cached_function_computes_once_per_arguments(storage):
    call_count = 0

    @cached(storage=storage)
    def expensive_function(_: int) -> None:
        nonlocal call_count
        call_count += 1

    expensive_function(1)
    assert call_count == 1
    expensive_function(1)
    assert call_count == 1
    expensive_function(2)
    assert call_count == 2


def test_cached_returns_equal_values_from_the_cache(storage):
    @cached(storage=storage)
    def f(x):
        return {"x": x, "list": [x, x + 1]}

    first = f(1)
    second = f(1)
    assert first == second == {"x": 1, "list": [1, 2]}
    assert second is not first  # unpickled from the cache


def test_decorator_also_works_without_parentheses_style_call(storage):
    def f(x):
        return x * 2

    g = cached(f, storage=storage)
    assert g(4) == 8
    assert g.__name__ == "f"
    assert g.__wrapped__ is f
    assert g.storage is storage


def test_positional_keyword_and_default_arguments_share_a_key(storage):
    calls = []

    @cached(storage=storage)
    def f(x, y=10):
        calls.append((x, y))
        return x + y

    assert f(1) == 11
    assert f(x=1) == 11
    assert f(1, 10) == 11
    assert f(1, y=10) == 11
    assert f(y=10, x=1) == 11
    assert len(calls) == 1
    assert f.cache_key(1) == f.cache_key(x=1, y=10)
    assert f(1, 2) == 3
    assert len(calls) == 2


def test_varargs_and_kwargs_signatures(storage):
    calls = []

    @cached(storage=storage)
    def f(a, *rest, k=1, **extra):
        calls.append(1)
        return (a, rest, k, extra)

    assert f(1, 2, 3, z=4, y=5) == (1, (2, 3), 1, {"z": 4, "y": 5})
    assert f(1, 2, 3, z=4, y=5) == (1, (2, 3), 1, {"z": 4, "y": 5})
    assert len(calls) == 1
    # In another order: **extra is another dict for the function (as in lru_cache).
    assert list(f(1, 2, 3, y=5, z=4)[3]) == ["y", "z"]
    assert len(calls) == 2
    assert f(1, 2) != f(1, 2, 3)
    with pytest.raises(TypeError):
        f()  # bad calls fail like the function would


def test_wrong_arguments_raise_type_error_like_the_function(storage):
    @cached(storage=storage)
    def f(x, y):
        return x

    with pytest.raises(TypeError):
        f(1)
    with pytest.raises(TypeError):
        f(1, 2, 3)
    with pytest.raises(TypeError):
        f(1, x=2)
    with pytest.raises(TypeError):
        f(1, z=2)


def test_unhashable_arguments_are_accepted(storage):
    calls = []

    @cached(storage=storage)
    def f(items, mapping, tags):
        calls.append(1)
        return sum(items) + sum(mapping.values()) + len(tags)

    assert f([1, 2], {"a": 1, "b": 2}, {"x", "y"}) == 8
    # equal sets built in another order are the same key
    assert f([1, 2], {"a": 1, "b": 2}, {"y", "x"}) == 8
    assert len(calls) == 1
    assert f([2, 1], {"a": 1, "b": 2}, {"x", "y"}) == 8
    assert len(calls) == 2


def test_equal_dicts_in_another_order_do_not_share_results(storage):
    # A dict keeps its order, and what is computed from it may show it (JSON, a table's
    # columns): keyed in any order, the second call returned the first's result.
    calls = []

    @cached(storage=storage)
    def dump(mapping):
        calls.append(1)
        return json.dumps(mapping)

    @cached(storage=storage)
    def names(**columns):
        return list(columns)

    assert dump({"a": 1, "b": 2}) == '{"a": 1, "b": 2}'
    assert dump({"b": 2, "a": 1}) == '{"b": 2, "a": 1}'
    assert dump({"a": 1, "b": 2}) == '{"a": 1, "b": 2}'
    assert len(calls) == 2
    assert names(a=1, b=2) == ["a", "b"]
    assert names(b=2, a=1) == ["b", "a"]


def test_cyclic_list_and_dict_arguments_are_keyed_by_value(storage):
    # A list or dict that contains itself raised RecursionError from the key. Its key
    # is its value, a reference back to the container where the cycle closes: equal
    # structures built apart share results, different ones do not.
    calls = []

    @cached(storage=storage)
    def size(x):
        calls.append(1)
        return len(x)

    def ring(*items):
        xs = list(items)
        xs.append(xs)
        return xs

    def loop(**items):
        d = dict(items)
        d["self"] = d
        return d

    assert size(ring(1, 2)) == 3
    assert size(ring(1, 2)) == 3
    assert len(calls) == 1
    assert size(ring(1, 3)) == 3
    assert size([1, 2, [1, 2]]) == 3  # not a cycle: another value
    assert len(calls) == 3
    assert size(loop(a=1)) == 2
    assert size(loop(a=1)) == 2
    assert len(calls) == 4
    inner = [0]
    outer = [inner, inner]  # one list twice is no cycle
    inner.append(outer)
    assert size.cache_key(outer) == size.cache_key(outer)
    assert size.cache_key(ring(ring(1))) != size.cache_key(ring(1))


def test_arguments_of_different_types_are_different_keys(storage):
    @cached(storage=storage)
    def f(x):
        return repr(x)

    assert f(1) == "1"
    assert f(1.0) == "1.0"
    assert f(True) == "True"
    assert f("1") == "'1'"
    assert f(b"1") == "b'1'"
    assert f((1,)) == "(1,)"
    assert f([1]) == "[1]"


def test_a_memoryview_argument_is_keyed_by_its_contents(storage):
    # pickle refuses a memoryview, so each view was keyed by its identity: a call with a
    # new view of the same bytes computed again and stored one more entry, for ever.
    calls = []

    @cached(storage=storage)
    def length(view):
        calls.append(1)
        return len(view.tobytes())

    data = bytes(range(10))
    assert length(memoryview(data)) == 10
    assert length(memoryview(bytearray(data))) == 10
    assert len(calls) == 1
    assert length.cache_key(memoryview(data)) == length.cache_key(memoryview(data))
    # Another content, format or shape is another key; so are the bytes themselves.
    view = memoryview(data)
    others = [view[:9], view.cast("H"), view.cast("B", (2, 5)), data, bytearray(data)]
    keys = {length.cache_key(view)} | {length.cache_key(o) for o in others}
    assert len(keys) == 1 + len(others)
    released = memoryview(data)
    released.release()
    with pytest.raises(ValueError, match="released"):
        length(released)


def test_nans_of_another_sign_do_not_share_results(storage):
    # Every NaN was keyed as "nan": the sign (math.copysign shows it) and the payload
    # (struct does) were lost, and sign(-nan) returned sign(nan)'s 1.0.
    @cached(storage=storage)
    def sign(x):
        return math.copysign(1.0, x)

    @cached(storage=storage)
    def bits(x):
        return struct.pack(">d", x)

    nan = float("nan")
    assert sign(nan) == 1.0
    assert sign(-nan) == -1.0
    other = struct.unpack(">d", bytes.fromhex("7ff8000000000001"))[0]
    assert bits(nan) == struct.pack(">d", nan)
    assert bits(other).hex() == "7ff8000000000001"


def test_ints_too_long_for_str_are_keyed_by_value(storage):
    # The key wrote an int in decimal, which Python refuses beyond 4300 digits (and
    # beyond sys.set_int_max_str_digits): such a call raised ValueError, where the
    # seed's hash() took it.
    calls = []

    @cached(storage=storage)
    def f(x):
        calls.append(x)
        return (x[0] if isinstance(x, list) else x) % 1000

    big = 10**5000
    assert (f(big), f(big + 7), f([big]), f(big), f(-big)) == (0, 7, 0, 0, 0)
    assert len(calls) == 4
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert (f(10**700), f(10**700 + 1), f(10**700)) == (0, 1, 0)
    finally:
        sys.set_int_max_str_digits(limit)
    assert len(calls) == 6


def test_different_functions_with_the_same_arguments_do_not_share_results(storage):
    @cached(storage=storage)
    def double(x):
        return 2 * x

    @cached(storage=storage)
    def triple(x):
        return 3 * x

    assert double(5) == 10
    assert triple(5) == 15
    assert double.cache_key(5) != triple.cache_key(5)
    assert b"test_cached.test_different_functions" in double.cache_key(5)


def test_functions_made_by_one_factory_do_not_share_results(storage):
    # Every function a factory makes has the same name: keyed by it alone, make(3)'s
    # results came back from make(2), and one lambda's from another's.
    def make(n):
        @cached(storage=storage)
        def times(x):
            return n * x

        return times

    assert (make(2)(5), make(3)(5), make(2)(5)) == (10, 15, 10)
    square = cached(storage=storage)(lambda x: x * x)
    cube = cached(storage=storage)(lambda x: x * x * x)
    assert (square(3), cube(3)) == (9, 27)


def test_functions_made_over_objects_that_cannot_be_pickled_do_not_share_results(storage):
    # What cannot be pickled (an instance of a class defined here, holding a lock) was
    # counted by its type alone: make(Box(3)) got make(Box(2))'s results.
    class Box:
        def __init__(self, n):
            self.n = n
            self.lock = threading.Lock()

    def make(box):
        @cached(storage=storage)
        def plus(x):
            with box.lock:
                return box.n + x

        return plus

    assert (make(Box(2))(5), make(Box(3))(5)) == (7, 8)


def test_functions_made_over_values_with_no_state_to_tell_do_not_share_results(storage, tmp_path):
    # A closure's value that neither pickle nor its __reduce_ex__ can encode (an open
    # file, an object refusing pickle), alone or inside another object, was counted by
    # its type alone: the second function made returned the first one's results. So
    # was a function it closes over (a lambda given to the factory).
    class Refuses:
        def __init__(self, n):
            self.n = n

        def __reduce_ex__(self, protocol):
            raise TypeError("not this one")

    class Holder:
        def __init__(self, inner):
            self.inner = inner

    def make(source):
        @cached(storage=storage)
        def read(x):
            inner = source.inner if isinstance(source, Holder) else source
            if isinstance(inner, Refuses):
                return inner.n + x
            if callable(inner):
                return inner(x)
            inner.seek(0)
            return inner.read() + str(x)

        return read

    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with open(tmp_path / "a") as a, open(tmp_path / "b") as b:
        assert (make(a)(1), make(b)(1)) == ("a1", "b1")
        assert (make(Holder(a))(1), make(Holder(b))(1)) == ("a1", "b1")
    assert (make(Refuses(2))(5), make(Refuses(3))(5)) == (7, 8)
    assert (make(Holder(Refuses(2)))(5), make(Holder(Refuses(3)))(5)) == (7, 8)
    assert (make(lambda x: x + 1)(5), make(lambda x: x * 2)(5)) == (6, 10)

    def helper(k):
        return lambda x: k * x

    assert (make(helper(3))(5), make(helper(4))(5)) == (15, 20)

    # Classes a factory makes have one name: their methods' objects told nothing apart.
    def make_class(k):
        class Scaled:
            factor = k

            def times(self, x):
                return self.factor * x

        return Scaled

    by_two = cached(storage=storage)(make_class(2)().times)
    by_three = cached(storage=storage)(make_class(3)().times)
    assert (by_two(5), by_three(5)) == (10, 15)


def test_a_function_made_over_a_standard_stream_keeps_its_key_in_another_folder(storage, tmp_path):
    # A file is named by its absolute name, and sys.stdout's is "<stdout>": joined to
    # the current folder, a function that logs to it had a key of each folder.
    def make(out):
        @cached(storage=storage)
        def shout(x):
            print(x, file=out)
            return x

        return shout

    key = make(sys.stdout).cache_key(1)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert make(sys.stdout).cache_key(1) == key
        assert make(sys.stderr).cache_key(1) != key
    finally:
        os.chdir(here)


def test_functions_made_over_values_with_no_weak_references_can_be_decorated(storage):
    # A value with no encoding by value and no weak references (a sqlite3 connection,
    # an event loop's selector, a weak reference): 1dcb9b8 raised TypeError at
    # decoration, where it had been memoised. Directly closed over it names the
    # function by the function's identity (never another's results); inside an
    # object's state it makes the object count by its identity.
    import asyncio
    import sqlite3
    import weakref

    def make(source):
        @cached(storage=storage)
        def describe(x):
            if isinstance(source, sqlite3.Connection):
                return source.execute("select v from t").fetchone()[0] + str(x)
            return source().base + str(x)

        return describe

    class Client:
        def __init__(self, base):
            self.base = base
            self.loop = asyncio.new_event_loop()

        def fetch(self, path):
            return self.base + path

    a, b = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for db, v in ((a, "a"), (b, "b")):
        db.execute("create table t(v)")
        db.execute("insert into t values (?)", (v,))
    assert (make(a)(1), make(b)(1)) == ("a1", "b1")
    one, two = Client("a"), Client("b")
    assert (make(weakref.ref(one))(2), make(weakref.ref(two))(2)) == ("a2", "b2")
    # A weak reference is what it refers to, in an object's fields too.
    holder = type("Holder", (), {})
    held_one, held_two = holder(), holder()
    held_one.ref, held_two.ref = weakref.ref(one), weakref.ref(two)
    assert (make(lambda: held_one.ref())(3), make(lambda: held_two.ref())(3)) == ("a3", "b3")
    try:
        fetch_one = cached(storage=storage)(one.fetch)
        assert fetch_one.cache_key("/x") == cached(storage=storage)(one.fetch).cache_key("/x")
        assert (fetch_one("/x"), cached(storage=storage)(two.fetch)("/x")) == ("a/x", "b/x")
    finally:
        for client in (one, two):
            client.loop.close()
        a.close()
        b.close()


def test_a_closure_keeps_its_key_when_what_it_closes_over_changes(storage):
    # What a closure is made with names it (decoration time); a counter it keeps in
    # that closure does not change its key.
    calls = []
    count = 0

    @cached(storage=storage)
    def f(x):
        nonlocal count
        count += 1
        calls.append(x)
        return x + 1

    key = f.cache_key(1)
    assert (f(1), f(1), count) == (2, 2, 1)
    assert f.cache_key(1) == key and calls == [1]



def test_a_closure_whose_variable_is_assigned_again_is_keyed_by_its_new_value(storage):
    # A closure reads its variables when it runs, not when it was made: the functions
    # a loop makes all see the loop variable's last value. Keyed by the values read at
    # decoration alone, make_all(3)[0] (5 * 2) returned make_all(1)[0]'s 0, and a
    # variable assigned after decoration gave another factory's result.
    def make_all(k):
        fs = []
        for n in range(k):

            def f(x):
                return x * n

            fs.append(cached(storage=storage)(f))
        return fs

    assert make_all(1)[0](5) == 0
    assert [f(5) for f in make_all(3)] == [10, 10, 10]

    def make(factor, later):
        @cached(storage=storage)
        def scaled(x):
            return x * factor

        factor = later
        return scaled

    assert (make(2, 2)(1), make(2, 3)(1), make(2, 2)(1)) == (2, 3, 2)
    # Assigned the same value again: the key it had (a hit, not a second computation).
    calls = []

    @cached(storage=storage)
    def g(x):
        calls.append(x)
        return x

    key = g.cache_key(1)
    assert g(1) == 1
    calls = []
    assert (g(1), calls, g.cache_key(1)) == (1, [], key)


_CLOSURE_KEY_IN_CHILD = """
import sys, threading
sys.path.insert(0, sys.argv[1])
import backlite
from backlite import cached

storage = backlite.Storage(":memory:")

def make(n, lock):
    tags = {n, "a", "b"}
    @cached(storage=storage)
    def times(x):
        with lock:
            return sorted(tags, key=str), x
    return times

in_set = cached(storage=storage)(lambda x: x in {"a", "b", "c"} and (lambda: x))

def over_a_local_function():
    import json

    def countdown(n):  # closes over itself
        return n if n < 1 else countdown(n - 1)

    @cached(storage=storage)
    def f(x):
        return json.dumps(countdown(x))
    return f

def a_local_class():
    class Base:
        def __init__(self):
            self.lock = threading.Lock()

    class Local(Base):
        __slots__ = ("n",)
        unit = "m"

        def __init__(self):
            super().__init__()
            self.n = 3

        @property
        def label(self):
            return self.unit

        @staticmethod
        def scale(x):
            return x

        @classmethod
        def make(cls):
            return cls()

        def fetch(self, x):
            return self.n * x

    return Local().fetch

print(make(7, threading.Lock()).cache_key(1).hex(), in_set.cache_key(1).hex(),
      over_a_local_function().cache_key(1).hex(),
      make(7, open(sys.executable, "rb")).cache_key(1).hex(),
      cached(storage=storage)(a_local_class()).cache_key(1).hex())
"""


def _outputs_under_hash_seeds(code, tmp_path, seeds):
    """What `code` prints in a child process under each PYTHONHASHSEED, as a set."""
    return {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for seed in seeds
    }


_DEFAULT_CLIENT_KEY_IN_CHILD = """
import sys, threading
import backlite


class Client:
    def __init__(self, base):
        self.lock = threading.Lock()  # so it cannot be pickled
        self.base = base


CLIENT = Client("https://a.example")
storage = backlite.Storage(":memory:")


@backlite.cached(storage=storage)
def fetch(path, client=CLIENT):
    return client.base + path


print(fetch.cache_key("/x").decode(), fetch.cache_key("/x", CLIENT).decode(),
      fetch.cache_key("/x", Client("https://b.example")).decode() == fetch.cache_key("/x").decode())
"""


def test_a_default_that_cannot_be_pickled_keeps_its_key_in_every_process(tmp_path):
    # fetch(path, client=CLIENT), a module's client holding a lock: the default was
    # keyed by its identity, as an argument that cannot be pickled is, so every process
    # and run had its own key and the memoised function never found an earlier run's
    # result (two keys under two seeds before). A default is part of the function, as
    # what a closure holds is: encoded by value the same way (a lock by its type).
    keys = _outputs_under_hash_seeds(_DEFAULT_CLIENT_KEY_IN_CHILD, tmp_path, ("0", "1"))
    assert len(keys) == 1
    default, explicit, other_client_same = keys.pop().split()
    assert default == explicit  # the default given explicitly is the same call
    assert other_client_same == "False"  # another client's state is another key


_RUN_EDITED = """
import sys
sys.path.insert(0, sys.argv[1])
import backlite, lib

storage = backlite.Storage(sys.argv[2])
print(backlite.cached(storage=storage)(lib.f)(1), backlite.cached(storage=storage)(lib.g)(1))
"""


def test_a_module_function_edited_between_runs_does_not_return_its_old_results(tmp_path, db):
    # A function of a module was named by its module and name alone: after its body
    # was edited, the next run returned what the old body had computed. Its code is in
    # its key; a change of lines only (a function added above it) keeps the key.
    lib = tmp_path / "lib.py"

    def run(source):
        lib.write_text(source)
        out = subprocess.run(
            [sys.executable, "-B", "-c", _RUN_EDITED, str(tmp_path), db],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.split()

    g = "def g(x):\n    import time\n    return time.monotonic_ns()\n"
    first = run("def f(x):\n    return x + 1\n" + g)
    assert first[0] == "2"
    assert run("def f(x):\n    return x * 10\n" + g) == ["10", first[1]]
    assert run("def h():\n    pass\n\n\n" + g + "def f(x):\n    return x * 10\n") == ["10", first[1]]


_RUN_EDITED_CALLABLES = """
import functools, sys
sys.path.insert(0, sys.argv[1])
import backlite, lib

storage = backlite.Storage(sys.argv[2])
print(backlite.cached(storage=storage)(lib.Times(3))(1),
      backlite.cached(storage=storage)(functools.partial(lib.f, 3))(1))
"""


def test_a_callable_object_or_partial_edited_between_runs_does_not_return_its_old_results(
    tmp_path, db
):
    # A function's code is in its key, but a callable object and a functools.partial
    # were named by their pickle alone, which names their class or function and not
    # its code: after __call__ or the function was edited, the next run returned what
    # the old code had computed.
    lib = tmp_path / "lib.py"

    def run(op):
        lib.write_text(
            "class Times:\n    def __init__(self, k):\n        self.k = k\n\n"
            f"    def __call__(self, x):\n        return x {op} self.k\n\n\n"
            f"def f(k, x):\n    return x {op} k\n"
        )
        out = subprocess.run(
            [sys.executable, "-B", "-c", _RUN_EDITED_CALLABLES, str(tmp_path), db],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.split()

    assert run("+") == ["4", "4"]
    assert run("*") == ["3", "3"]
    assert run("+") == ["4", "4"]


def test_closure_keys_are_stable_across_processes_and_hash_seeds(tmp_path):
    # What a closure holds is encoded as arguments are (a set in any order); what
    # cannot be pickled by value, not identity: a lock by its type, a module by its
    # name, a local function (recursive) by its name, code and closure, a file by its
    # name, a local class by its name, bases and attributes (a property, a super()
    # cell). A lambda's code too (a frozenset constant, a nested lambda).
    seeds = ("0", "1", "random")
    assert len(_outputs_under_hash_seeds(_CLOSURE_KEY_IN_CHILD, tmp_path, seeds)) == 1


_KEY_IN_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import backlite
from backlite import cached
import datetime

storage = backlite.Storage(":memory:")

@cached(storage=storage)
def f(a, b=None, *, c=1):
    return a

key = f.cache_key("text", {"k": [1, 2.5, None]}, c=frozenset({"x", "y", "z"}))
key2 = f.cache_key(b"bytes", (1, True, datetime.date(2024, 1, 2)))
print(key.hex(), key2.hex())
"""


def test_memo_keys_are_stable_across_processes_and_hash_seeds(tmp_path):
    """The seed used hash(), salted per process: no run ever found another's results."""
    seeds = ("0", "1", "12345", "random")
    assert len(_outputs_under_hash_seeds(_KEY_IN_CHILD, tmp_path, seeds)) == 1


_SET_IN_AN_OBJECT_IN_CHILD = """
import dataclasses, sys
import backlite

storage = backlite.Storage(":memory:")


@dataclasses.dataclass(frozen=True)
class Query:
    tags: frozenset
    options: dict


class Tags(set):
    pass


@backlite.cached(storage=storage)
def f(q):
    return q

q = Query(frozenset({"alpha", "beta", "gamma", "delta"}), {"k": {"x", "y", ("z", 1)}})
print(f.cache_key(q).decode(), f.cache_key(Query(frozenset(), {"t": Tags({"a", "b", "c"})})).decode())
"""


def test_a_set_inside_a_pickled_argument_has_one_key_under_every_hash_seed(tmp_path):
    # An argument encoded by its pickle (a dataclass) wrote a set it holds in the order
    # of its items' hashes, salted per process: each process and run had its own key
    # for the call (4 keys under 4 seeds before), and never found another's result.
    seeds = ("0", "1", "12345", "random")
    assert len(_outputs_under_hash_seeds(_SET_IN_AN_OBJECT_IN_CHILD, tmp_path, seeds)) == 1


_SET_SUBCLASS_IN_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import backlite
from tags import Tags, FrozenTags, Query

storage = backlite.Storage(":memory:")


@backlite.cached(storage=storage)
def f(q):
    return q

words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
print(f.cache_key(Tags(words)).decode(), f.cache_key(FrozenTags(words)).decode(),
      f.cache_key(Query(Tags(words))).decode())
"""


def test_a_set_subclass_argument_has_one_key_under_every_hash_seed(tmp_path):
    # A subclass of set or frozenset (of a module, not a script) pickles as its class
    # and a list of its items in the order of their hashes, salted per process, with
    # none of the set opcodes that sent a pickle to the sorting pickler: each process
    # and run had its own key for the call (4 keys under 4 seeds before).
    (tmp_path / "tags.py").write_text(
        "import dataclasses\n"
        "class Tags(set):\n    pass\n"
        "class FrozenTags(frozenset):\n    pass\n"
        "@dataclasses.dataclass\n"
        "class Query:\n    tags: Tags\n"
    )
    seeds = ("0", "1", "12345", "random")
    keys = _outputs_under_hash_seeds(_SET_SUBCLASS_IN_CHILD, tmp_path, seeds)
    assert len(keys) == 1
    tags, frozen, query = keys.pop().split()
    assert len({tags, frozen, query}) == 3  # still told apart


@dataclasses.dataclass
class _Pair:
    a: object
    b: object


@dataclasses.dataclass
class _Node:
    name: str
    parent: _Node | None = None
    children: list[_Node] = dataclasses.field(default_factory=list)


def _tree(root_name: str) -> _Node:
    root = _Node(root_name)
    for name in ("a", "b"):
        root.children.append(_Node(name, root))
    return root


def test_an_argument_holding_one_object_twice_has_the_key_of_one_holding_equal_ones(storage):
    # Pickle writes an object met twice as a reference to the first: _Pair(s, s) and
    # _Pair(s, t) of two equal strings (one read from JSON) were two keys for one
    # call, so the second computed again (calls 2, not 1, before).
    calls = []

    @cached(storage=storage)
    def f(pair):
        calls.append(pair)
        return pair.a + pair.b

    s = "hello world"
    t = json.loads('"hello world"')
    assert s == t and s is not t
    items = [1.5, 2.5]
    assert f(_Pair(s, s)) == f(_Pair(s, t)) == s + s
    assert f(_Pair(items, items)) == f(_Pair([1.5, 2.5], [1.5, 2.5])) == items + items
    assert len(calls) == 2
    # An object that holds itself (a node and its parent) still has a key, the same
    # for equal structures built apart, another for another structure.
    assert f.cache_key(_tree("r")) == f.cache_key(_tree("r")) != f.cache_key(_tree("s"))


def test_results_are_shared_across_processes(db, tmp_path, child_env):
    log = str(tmp_path / "log")
    code = (
        "import sys, helpers; f = helpers.make_slow_square(sys.argv[1], sys.argv[2], 0);"
        "print(f(12))"
    )
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code, db, log], env=child_env, check=True,
            capture_output=True, text=True,
        ).stdout
        assert out.strip() == "144"
    from helpers import count

    assert count(log) == 1


def test_values_are_pickled_with_the_highest_protocol(storage):
    @cached(storage=storage)
    def f(x):
        return {"x": x}

    f(1)
    (key,) = storage.get_keys()
    raw = storage.get(key)["value"]
    assert raw[0] == 0x80 and raw[1] == pickle.HIGHEST_PROTOCOL
    assert pickle.loads(raw) == {"x": 1}


def test_memo_keys_are_readable_strings(storage):
    @cached(storage=storage)
    def f(x):
        return x

    f(1)
    (key,) = storage.get_keys()
    assert isinstance(key, str)
    assert key.startswith("backlite.memo:test_cached.")
    assert key.encode() == f.cache_key(1)


def test_exception_in_the_function_is_reraised_and_nothing_is_stored(storage):
    calls = []

    class Boom(Exception):
        pass

    @cached(storage=storage)
    def f(x):
        calls.append(x)
        if len(calls) == 1:
            raise Boom("first call fails")
        return x

    with pytest.raises(Boom, match="first call fails") as info:
        f(1)
    # the traceback reaches into the function
    assert any(tb.name == "f" for tb in info.traceback)
    assert storage.get_keys() == set()
    assert f(1) == 1
    assert f(1) == 1
    assert calls == [1, 1]


def test_base_exceptions_in_the_function_are_reraised_too(storage):
    @cached(storage=storage)
    def f():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        f()


def test_unpicklable_result_raises_and_is_not_stored(storage):
    @cached(storage=storage)
    def f():
        return threading.Lock()

    with pytest.raises(TypeError) as raised:
        f()
    assert storage.get_keys() == set()
    # pickle's own message names the lock, not the function whose result it was.
    assert raised.value.__notes__ == [
        f"cached(): the result of {__name__}.test_unpicklable_result_raises_and_is_not_stored"
        f".<locals>.f (a {type(threading.Lock()).__name__}) cannot be pickled, so it was not stored; memoise a function "
        "that returns a picklable value"
    ]

    lock = threading.Lock()

    @cached(storage=storage, barrier=lock)
    def g(x):
        return lambda: x

    for _ in range(2):  # computed again each time: neither stored nor left locked
        with pytest.raises((AttributeError, pickle.PicklingError)) as raised:
            g(1)
        assert "the result of" in raised.value.__notes__[0]
        assert not lock.locked()
    assert storage.get_keys() == set()


def test_an_unreadable_stored_value_is_recomputed(storage):
    calls = []

    @cached(storage=storage)
    def f(x):
        calls.append(x)
        return x * 2

    storage.set(f.cache_key(3), {"value": b"not a pickle"})
    assert f(3) == 6
    assert f(3) == 6
    assert calls == [3]


def test_nested_cached_calls(storage):
    calls = []

    @cached(storage=storage)
    def fib(n):
        calls.append(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040
    assert sorted(calls) == list(range(31))
    assert fib(30) == 832040
    assert len(calls) == 31


def test_expiration_per_decorator(storage):
    calls = []

    @cached(storage=storage, expiration=timedelta(0))
    def never_kept(x):
        calls.append(x)
        return x

    never_kept(1)
    never_kept(1)
    assert calls == [1, 1]

    @cached(storage=storage, expiration=timedelta(seconds=60))
    def kept(x):
        return x

    kept(1)
    item = storage.get(kept.cache_key(1))
    assert timedelta(seconds=50) < item["expiration"] <= timedelta(seconds=60)


def test_default_expiration_of_the_storage_applies_to_memoised_results(db):
    with Storage(db, default_expiration=timedelta(seconds=30)) as s:

        @cached(storage=s)
        def f(x):
            return x

        f(1)
        assert s.get(f.cache_key(1))["expiration"] <= timedelta(seconds=30)


def test_param_hash_func(storage):
    seen = []

    def by_first_arg(sig, args, kwargs):
        seen.append((sig, args, kwargs))
        return str(args[0])

    @cached(storage=storage, param_hash_func=by_first_arg)
    def f(x, noise):
        return x

    assert f(1, "a") == 1
    assert f(1, "b") == 1  # noise is not part of the key
    assert len(seen) == 2
    assert str(seen[0][0]) == "(x, noise)"


def test_result_larger_than_the_size_limit_is_returned_not_stored(db):
    with Storage(db, size_limit=50) as s:
        calls = []

        @cached(storage=s)
        def f(n):
            calls.append(n)
            return b"x" * n

        assert f(1000) == b"x" * 1000
        assert f(1000) == b"x" * 1000
        assert calls == [1000, 1000]


def test_methods_are_cached_by_their_arguments_including_self(storage):
    class Point:
        def __init__(self, x):
            self.x = x

        def __eq__(self, other):
            return self.x == other.x

        def __reduce__(self):
            return (Point, (self.x,))

    Point.__module__ = __name__
    Point.__qualname__ = "Point"
    globals()["Point"] = Point
    calls = []

    class Geometry:
        @cached(storage=storage)
        def norm(self, p):
            calls.append(p.x)
            return abs(p.x)

        def __reduce__(self):
            return (Geometry, ())

    Geometry.__module__ = __name__
    Geometry.__qualname__ = "Geometry"
    globals()["Geometry"] = Geometry
    g = Geometry()
    assert g.norm(Point(-3)) == 3
    assert Geometry().norm(Point(-3)) == 3
    assert calls == [-3]


def test_methods_of_a_class_defined_in_a_function_are_cached(storage):
    # Such a class cannot be pickled: its instances (each method's `self`), the class
    # itself (a classmethod's `cls`) and local functions are keyed by identity, as the
    # seed's hash() keyed them, instead of raising TypeError.
    calls = []

    class Calculator:
        @cached(storage=storage)
        def add(self, x, y):
            calls.append(("add", x, y))
            return x + y

        @classmethod
        @cached(storage=storage)
        def twice(cls, x):
            calls.append(("twice", x))
            return 2 * x

    @cached(storage=storage)
    def apply(fn, x):
        calls.append(("apply", x))
        return fn(x)

    calc = Calculator()
    assert calc.add(1, 2) == 3
    assert calc.add(1, 2) == 3
    assert Calculator.twice(4) == 8
    assert Calculator.twice(4) == 8
    inc = lambda v: v + 1  # noqa: E731
    assert apply(inc, 1) == 2
    assert apply(inc, 1) == 2
    assert calls == [("add", 1, 2), ("twice", 4), ("apply", 1)]
    other = Calculator()  # another object: not the same argument
    assert other.add(1, 2) == 3
    assert apply(lambda v: v - 1, 1) == 0
    assert len(calls) == 5


def test_cached_over_classmethod_and_staticmethod(storage):
    # @cached above @classmethod raised TypeError ("not a callable object"), and above
    # @staticmethod made a function that took the object as its first argument when
    # called through an object (TypeError). Either way round, a classmethod gets its
    # class (keyed by it: a subclass is another call) and a staticmethod no object.
    calls = []

    class Units:
        @cached(storage=storage)
        @classmethod
        def scaled(cls, x):
            calls.append(("scaled", cls.__name__, x))
            return (cls.__name__, x * 10)

        @cached(storage=storage)
        @staticmethod
        def halved(x):
            calls.append(("halved", x))
            return x / 2

        @staticmethod
        @cached(storage=storage)
        def doubled(x):
            calls.append(("doubled", x))
            return x * 2

        @async_cached(storage=storage)
        @classmethod
        async def fetched(cls, x):
            calls.append(("fetched", x))
            return x + 1

    class MoreUnits(Units):
        pass

    assert Units.scaled(1) == ("Units", 10)
    assert Units().scaled(1) == ("Units", 10)
    assert MoreUnits.scaled(1) == ("MoreUnits", 10)
    assert calls == [("scaled", "Units", 1), ("scaled", "MoreUnits", 1)]
    calls.clear()
    for f in (Units.halved, Units().halved, MoreUnits().halved):
        assert f(3) == 1.5
    for f in (Units.doubled, Units().doubled):
        assert f(3) == 6
    assert calls == [("halved", 3), ("doubled", 3)]
    assert Units.halved.cache_key(3) == Units().halved.cache_key(3)
    assert Units.scaled.storage is storage
    calls.clear()
    assert asyncio.run(Units.fetched(1)) == 2
    assert asyncio.run(Units().fetched(1)) == 2
    assert calls == [("fetched", 1)]


def test_the_key_of_a_method_through_its_object_is_never_another_calls(storage):
    # obj.fetch.cache_key(...) is the function's own attribute: the object is not
    # passed. With fetch(self, x=0), repo.fetch.cache_key(5) was the key of a call with
    # self=5, x=0: a storage.delete of it removed nothing, and the stale result stayed.
    # It raises TypeError now; the object first gives the key the call stored under.
    class Repo:
        def __init__(self, n):
            self.n = n

        @cached(storage=storage)
        def fetch(self, x=0):
            return (self.n, x)

        @property
        @cached(storage=storage)
        def size(self):
            return self.n

        @cached(storage=storage)
        def __hidden(self, x=0):
            return x

        def hidden(self, x=0):
            return self.__hidden(x)

        @classmethod
        @cached(storage=storage)
        def make(cls, n=0):
            return n

        @staticmethod
        @cached(storage=storage)
        def plain(x=0):
            return x

        @async_cached(storage=storage)
        async def later(self, x=0):
            return x

        def late(self, x=0):
            return x

    class SubRepo(Repo):
        def fetch(self, x=0):
            return super().fetch(x)

    Repo.late = cached(storage=storage)(Repo.late)
    repo, sub = Repo(1), SubRepo(2)
    for obj in (repo, sub):
        assert obj.fetch(5) == (obj.n, 5)
        assert obj.size == obj.n
        assert obj.hidden(5) == 5
        assert asyncio.run(obj.later(5)) == 5
        assert obj.late(5) == 5
    assert Repo.make(5) == 5 and Repo.plain(5) == 5
    stored = storage.get_keys()
    assert len(stored) == 12
    for obj in (repo, sub):
        for key in (
            Repo.fetch.cache_key(obj, 5), repo.fetch.cache_key(obj, 5),
            Repo.size.fget.cache_key(obj), obj._Repo__hidden.cache_key(obj, 5),
            Repo.later.cache_key(obj, 5), obj.late.cache_key(obj, 5),
        ):
            assert key.decode() in stored
        with pytest.raises(TypeError, match="object first"):
            repo.fetch.cache_key(5)
        with pytest.raises(TypeError, match="object first"):
            obj.later.cache_key(x=5)
        with pytest.raises(TypeError, match="object first"):
            obj.late.cache_key(5)
    assert Repo.make.cache_key(Repo, 5).decode() in stored
    assert Repo.plain.cache_key(5).decode() in stored
    with pytest.raises(TypeError, match="object first"):
        Repo.make.cache_key(5)


class _Times:
    """A picklable callable object (module level), for the test below."""

    def __init__(self, k):
        self.k = k

    def __call__(self, x):
        return x * self.k

    def times(self, x):
        return x * self.k


def test_callable_objects_and_bound_methods_are_told_apart(storage):
    # A callable object was named by its repr (with its address, which the next object
    # there took over, with its results), a bound method by its method's name alone:
    # another object got the first one's results.
    import gc

    class LocalTimes(_Times):  # not picklable: told apart by its state
        pass

    for k in range(20):
        for cls in (_Times, LocalTimes):
            by_call = cached(storage=storage)(cls(k))
            by_method = cached(storage=storage)(cls(k).times)
            assert (by_call(3), by_method(3)) == (3 * k, 3 * k)
            del by_call, by_method
            gc.collect()
    assert cached(storage=storage)("abc".upper)() == "ABC"
    assert cached(storage=storage)("xyz".upper)() == "XYZ"


_BOUND_KEY_IN_CHILD = """
import sys, threading
import backlite
from backlite import cached

storage = backlite.Storage(":memory:")

class Client:  # holds a lock: cannot be pickled
    def __init__(self, base):
        self.base = base
        self.lock = threading.Lock()

    def fetch(self, path):
        return self.base + path

class Slotted:  # neither picklable nor weakly referenceable
    __slots__ = ("lock",)

    def __init__(self):
        self.lock = threading.Lock()

    def fetch(self, path):
        return path

keys = [cached(storage=storage)(o.fetch).cache_key("/x") for o in (Client("a"), Client("b"), Slotted())]
print(" ".join(k.hex() for k in keys))
"""


def test_a_method_of_an_unpicklable_object_keeps_its_key_across_processes():
    # The object a method is bound to names the function, as a closure's values do:
    # by its state when it cannot be pickled, not its identity in one process (every
    # process, every run missed what `cached(client.fetch)` had stored; a __slots__
    # object's raised TypeError). Objects of other states stay apart.
    outs = {
        subprocess.run(
            [sys.executable, "-c", _BOUND_KEY_IN_CHILD], check=True, capture_output=True, text=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 1
    assert len(set(outs.pop().split())) == 3


def test_partials_of_a_local_function_are_told_apart(storage):
    # A partial of a function that cannot be pickled is encoded as pickle would
    # rebuild it (its function, by type, and its arguments): its __getstate__ alone has
    # no arguments, and partial(times, 4) got partial(times, 3)'s results.
    import functools

    def times(k, x):
        return k * x

    by_three = cached(storage=storage)(functools.partial(times, 3))
    by_four = cached(storage=storage)(functools.partial(times, 4))
    assert (by_three(5), by_four(5)) == (15, 20)


def test_an_unpicklable_argument_gone_never_finds_another_objects_result(storage):
    # A new object may get the address (id) of one that died: it must not be taken
    # for it.
    class Box:
        def __init__(self, n):
            self.n = n

    @cached(storage=storage)
    def unbox(box):
        return box.n

    for n in range(200):
        assert unbox(Box(n)) == n


def test_unpicklable_arguments_of_a_forked_child_are_its_own(db):
    # Parent and child count identity tokens from the same point after fork(): the
    # child's must not be taken for the parent's in the file they share.
    import multiprocessing as mp

    s = Storage(db)

    class Box:
        def __init__(self, n):
            self.n = n

    @cached(storage=s)
    def unbox(box):
        return box.n

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    go = ctx.Event()

    def child():
        go.wait(60)
        q.put(unbox(Box("child")))

    p = ctx.Process(target=child)
    p.start()
    kept = Box("parent")
    assert unbox(kept) == "parent"
    go.set()
    assert q.get(timeout=60) == "child"
    p.join(60)
    assert p.exitcode == 0
    s.close()


def test_unpicklable_arguments_without_weak_references_raise_a_clear_type_error(storage):
    class Slotted:
        __slots__ = ()

    @cached(storage=storage)
    def f(x):
        return 1

    with pytest.raises(TypeError, match="param_hash_func"):
        f(Slotted())


# -- barriers --------------------------------------------------------------------------


def test_cached_function_with_barrier_waits_for_it(storage):
    lock = threading.Lock()
    lock.acquire()
    call_count = 0

    @cached(storage=storage, barrier=lock)
    def expensive_function(_: int) -> None:
        nonlocal call_count
        call_count += 1

    thread = threading.Thread(target=expensive_function, args=(1,))
    thread.start()
    thread.join(0.1)
    assert thread.is_alive()
    assert call_count == 0
    lock.release()
    thread.join()
    assert call_count == 1
    assert not lock.locked()


class RecordingLock:
    """Lock-like: acquire/release, recording every use."""

    def __init__(self, fail_acquire=False, fail_release=False):
        self.events = []
        self.fail_acquire = fail_acquire
        self.fail_release = fail_release

    def acquire(self):
        self.events.append("acquire")
        if self.fail_acquire:
            raise RuntimeError("cannot acquire")
        return True

    def release(self):
        self.events.append("release")
        if self.fail_release:
            raise RuntimeError("cannot release")


class ContextOnly:
    def __init__(self):
        self.events = []

    def __enter__(self):
        self.events.append("enter")

    def __exit__(self, *exc):
        self.events.append("exit")


def test_barrier_is_taken_only_on_a_miss(storage):
    lock = RecordingLock()

    @cached(storage=storage, barrier=lock)
    def f(x):
        assert lock.events[-1] == "acquire"  # computed under the barrier
        return x

    assert f(1) == 1
    assert lock.events == ["acquire", "release"]
    assert f(1) == 1
    assert lock.events == ["acquire", "release"]


def test_context_manager_barrier(storage):
    barrier = ContextOnly()

    @cached(storage=storage, barrier=barrier)
    def f(x):
        return x

    f(1)
    assert barrier.events == ["enter", "exit"]


def test_barrier_released_when_the_function_raises(storage):
    lock = threading.Lock()

    @cached(storage=storage, barrier=lock)
    def f():
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        f()
    assert not lock.locked()


def test_exception_raised_by_the_barrier_is_reraised(storage):
    lock = RecordingLock(fail_acquire=True)

    @cached(storage=storage, barrier=lock)
    def f():
        return 1

    with pytest.raises(RuntimeError, match="cannot acquire"):
        f()
    assert lock.events == ["acquire"]

    lock2 = RecordingLock(fail_release=True)

    @cached(storage=storage, barrier=lock2)
    def g():
        return 1

    with pytest.raises(RuntimeError, match="cannot release"):
        g()
    assert lock2.events == ["acquire", "release"]


def test_filled_while_waiting_for_the_barrier_is_not_recomputed(storage):
    calls = []

    class FillingLock(RecordingLock):
        def acquire(self):
            # another caller fills the key while we wait
            storage.set(f.cache_key(5), {"value": pickle.dumps("from elsewhere")})
            return super().acquire()

    @cached(storage=storage, barrier=FillingLock())
    def f(x):
        calls.append(x)
        return "computed"

    assert f(5) == "from elsewhere"
    assert calls == []


_RECURSION_UNDER_A_BARRIER = """
import asyncio, sys, threading
import backlite

storage = backlite.Storage(sys.argv[1])
kind = sys.argv[2]
lock = {"Lock": threading.Lock, "RLock": threading.RLock}[kind]()
calls = []

@backlite.cached(storage=storage, barrier=lock)
def fib(n):
    calls.append(n)
    return n if n < 2 else fib(n - 1) + fib(n - 2)

@backlite.async_cached(storage=storage, barrier=lock)
async def afib(n):
    return n if n < 2 else await afib(n - 1) + await afib(n - 2)

async def both():
    alock = asyncio.Lock()

    @backlite.async_cached(storage=storage, barrier=alock)
    async def gfib(n):
        parts = await asyncio.gather(gfib(n - 1), gfib(n - 2)) if n >= 2 else [n]
        return sum(parts)

    return await afib(12), await gfib(12)

print(fib(12), len(calls), *asyncio.run(both()), lock.locked() if kind == "Lock" else "-")
"""


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_a_memoised_recursion_under_its_own_barrier_does_not_deadlock(tmp_path, kind):
    # fib(n) calling fib(n - 1) on a miss asks for the barrier its own outer call holds.
    # cached with a Lock, async_cached with any sync lock (taken by a thread of its own,
    # so even an RLock was another thread's) or an asyncio.Lock waited for themselves for
    # ever. A barrier held by the computation a call is made from (this thread's, for
    # cached; this task's and the tasks it starts, for async_cached) is not taken again.
    # In a child process: before the fix it hung, and the timeout ends it.
    out = subprocess.run(
        [sys.executable, "-c", _RECURSION_UNDER_A_BARRIER, str(tmp_path / "c.db"), kind],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["144", "13", "144", "144", "False" if kind == "Lock" else "-"]


_SYNC_AND_ASYNC_UNDER_ONE_BARRIER = """
import asyncio, sys, threading
import backlite

storage = backlite.Storage(sys.argv[1])
lock = threading.Lock()

@backlite.cached(storage=storage, barrier=lock)
def square(n):
    return n * n

@backlite.async_cached(storage=storage, barrier=lock)
async def squares(n):
    return sum(square(i) for i in range(n)) + await asyncio.to_thread(square, n)

@backlite.async_cached(storage=storage, barrier=lock)
async def cube(n):
    return n ** 3

async def all_cubes(n):
    return sum([await cube(i) for i in range(n)])

@backlite.cached(storage=storage, barrier=lock)
def cubes(n):
    return asyncio.run(all_cubes(n))

print(asyncio.run(squares(4)), cubes(3), lock.locked())
"""


def test_sync_and_async_functions_under_one_barrier_call_each_other_without_deadlock(tmp_path):
    # An async_cached computation holding the barrier (a file lock shared by sync and
    # async code, say) that calls a cached function under the same barrier, or a cached
    # computation that runs an event loop calling an async_cached one, asked for the
    # barrier its own outer call held: each waited for itself for ever. A barrier held
    # by the computation a call is made from is not taken again, whichever decorator
    # holds it. In a child process: before the fix it hung, and the timeout ends it.
    out = subprocess.run(
        [sys.executable, "-c", _SYNC_AND_ASYNC_UNDER_ONE_BARRIER, str(tmp_path / "c.db")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["30", "9", "False"]


def test_async_only_barrier_is_refused_by_cached(storage):
    import asyncio

    with pytest.raises(TypeError, match="async_cached"):
        cached(storage=storage, barrier=asyncio.Lock())(lambda: 1)
    with pytest.raises(TypeError):
        cached(storage=storage, barrier=object())(lambda: 1)


def test_storage_must_be_a_storage():
    with pytest.raises(TypeError):
        cached(storage="cache.db")(lambda: 1)


# -- concurrency -----------------------------------------------------------------------


def test_threads_computing_one_key_compute_it_once(storage):
    calls = []
    start = threading.Barrier(8)

    @cached(storage=storage)
    def slow(x):
        calls.append(x)
        time.sleep(0.2)
        return x * 10

    results = []

    def run():
        start.wait()
        results.append(slow(4))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [40] * 8
    assert calls == [4]


def test_threads_on_distinct_keys(storage):
    @cached(storage=storage)
    def sq(x):
        return x * x

    errors = []

    def run(base):
        try:
            for i in range(200):
                assert sq(base * 1000 + i) == (base * 1000 + i) ** 2
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(b,)) for b in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert storage.stats().count == 1200


def test_processes_computing_one_key_compute_it_once(db, tmp_path):
    import multiprocessing as mp

    from helpers import count, worker_slow_square

    log = str(tmp_path / "log")
    ctx = mp.get_context("spawn")
    start_at = time.time() + 1.5  # after the children have started
    with ctx.Pool(4) as pool:
        results = pool.starmap(worker_slow_square, [(db, log, start_at)] * 4)
    assert results == [49] * 4
    assert count(log) == 1


def test_a_call_of_the_key_being_computed_from_inside_its_computation_runs_it(storage, monkeypatch):
    # f(1) calling f(1) (a recursion with the same arguments) waited for the key's
    # lease, held by its own outer call: 60 s, then LeaseHeldError "another owner is
    # still computing this key". It runs the function, as the original (which took no
    # lock) did; the outer call stores its own result.
    import backlite.decorators

    monkeypatch.setattr(backlite.decorators, "_EXCLUSIVE_WAIT_MS", 2000)
    calls = []

    @cached(storage=storage)
    def f(x):
        calls.append(x)
        return x if len(calls) > 1 else f(x) + 1

    assert f(1) == 2
    assert calls == [1, 1]
    assert f(1) == 2  # the outer call's result, stored
    assert calls == [1, 1]
    # Other keys inside a computation are memoised as ever.

    @cached(storage=storage)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(40) == 102334155
    assert storage.get_keys() >= {fib.cache_key(n).decode() for n in range(41)}


CTRL_C_WHILE_WAITING = """
import signal, sys, threading, time
import backlite

# SIGINT raises KeyboardInterrupt, as in a terminal: a process a shell starts in the
# background (as CI may run this suite) inherits SIGINT ignored, and Python keeps it so.
signal.signal(signal.SIGINT, signal.default_int_handler)
storage = backlite.Storage(sys.argv[1])
computing = threading.Event()


@backlite.cached(storage=storage)
def slow(x):
    print("computing", flush=True)
    computing.set()
    sys.stdin.read()  # until the test closes it: the key's lease stays held
    return x


if sys.argv[2] == "holder":
    slow(1)
    sys.exit(0)

# Waits as long as the holder computes (not the 60 s default), so only Ctrl-C ends it.
backlite.decorators._EXCLUSIVE_WAIT_MS = 24 * 3600 * 1000
holder = None
if sys.argv[2] == "waiter-beside-holder":
    # The holder is a thread of this process: the wait is for this file's release.
    holder = threading.Thread(target=slow, args=(1,))
    holder.start()
    computing.wait()
misses_before = storage.stats().misses


def tell_when_waiting():
    # The call counts its miss inside the native call, on its first look, before it
    # waits: from then on the main thread is in the library's wait (or about to be).
    while storage.stats().misses == misses_before:
        time.sleep(0.001)
    print("waiting", flush=True)


threading.Thread(target=tell_when_waiting, daemon=True).start()
try:
    slow(1)
    print("returned", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
except backlite.LeaseHeldError:
    print("LeaseHeldError", flush=True)
if holder is not None:
    holder.join()
"""


def _line_within(stream, seconds: float) -> str | None:
    """The next line of a child's output, or None if none comes within ``seconds`` (a
    bound against a hang, never a measure of speed)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return got[0] if got else None


@pytest.mark.parametrize("holder_is", ["another process", "a thread of the waiter's"])
def test_ctrl_c_ends_a_wait_for_another_caller_computing_the_key(db, tmp_path, holder_is):
    # A caller waiting for another caller's computation of its key was blocked inside
    # the core's call, where Python's signal handlers never ran: Ctrl-C was seen only
    # once the wait ended (here, with a wait of a day, never). The SIGINT is sent once
    # the waiter is known to be inside the call (its miss counted), and every wait of
    # the test is bounded: a child that does not end is killed and the test fails.
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_WHILE_WAITING)
    run = lambda role: subprocess.Popen(  # noqa: E731
        [sys.executable, str(script), db, role],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    children = []
    try:
        if holder_is == "another process":
            holder = run("holder")
            children.append(holder)
            assert _line_within(holder.stdout, 120) == "computing\n"
            waiter = run("waiter")
            children.append(waiter)
        else:
            holder = waiter = run("waiter-beside-holder")
            children.append(waiter)
            assert _line_within(waiter.stdout, 120) == "computing\n"
        assert _line_within(waiter.stdout, 120) == "waiting\n"
        waiter.send_signal(signal.SIGINT)
        # Before the holder is done: only Ctrl-C can end the wait.
        assert _line_within(waiter.stdout, 120) == "KeyboardInterrupt\n", "Ctrl-C did not end the wait"
        assert holder.poll() is None  # still computing
        holder.stdin.close()
        for child in children:
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail("a child did not end once the holder was done")
            assert (child.returncode, child.stdout.read()) == (0, ""), child.stderr.read()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    # The holder's result was stored: the waiter left no lease or value behind.
    with Storage(db) as s:
        assert len(s.get_keys()) == 1


def test_a_storage_opened_before_fork_works_in_the_child(db, tmp_path):
    import multiprocessing as mp

    s = Storage(db)
    s.set("parent", {"value": b"p"})
    calls_log = str(tmp_path / "log")

    @cached(storage=s)
    def f(x):
        from helpers import record

        record(calls_log)
        return x + 1

    assert f(1) == 2
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child():
        try:
            q.put((s.get("parent"), f(1), f(2)))
            s.set("child", {"value": b"c"})
            q.put("ok")
        except BaseException as e:  # noqa: BLE001
            q.put(repr(e))

    p = ctx.Process(target=child)
    p.start()
    got = q.get(timeout=60)
    assert got == ({"value": b"p"}, 2, 3)
    assert q.get(timeout=60) == "ok"
    p.join(60)
    assert p.exitcode == 0
    assert s.get("child") == {"value": b"c"}
    from helpers import count

    assert count(calls_log) == 2  # f(1) in the parent, f(2) in the child
    s.close()



def test_a_child_forked_right_after_many_gets_can_write(db):
    # The gets fill the hit buffer: the library's hit writer (a thread of its own, not
    # Python's) is writing when the fork comes. The fork waits for it to be between two
    # writes, so the child does not inherit its hold on the file's write lock.
    import multiprocessing as mp

    s = Storage(db)
    keys = [f"k{i}" for i in range(20000)]
    for i in range(0, len(keys), 5000):
        s.set_many({k: {"value": b"v"} for k in keys[i : i + 5000]})
    ctx = mp.get_context("fork")
    for round in range(3):
        for k in keys:
            assert s.get(k) is not None
        q = ctx.Queue()

        def child():
            try:
                s.set(f"child{round}", {"value": b"c"})
                q.put("ok")
            except BaseException as e:  # noqa: BLE001
                q.put(repr(e))

        p = ctx.Process(target=child)
        p.start()
        assert q.get(timeout=60) == "ok"
        p.join(60)
        assert p.exitcode == 0
        assert s.get(f"child{round}") == {"value": b"c"}
    s.close()


def test_a_child_forked_while_other_threads_write_can_write(db):
    # A fork that came while another thread of the parent was inside a write left the
    # child SQLite's in-process record of the file's write lock, held by a connection
    # it never uses: every write of the child, by any handle on the file, was BusyError
    # after the busy timeout (9 children of 30 before), and some hung at their first
    # call. os.fork() now waits until no thread is inside a call of the library. The
    # threads also run cached functions (the fork passes their computations) and one
    # child forks from inside one.
    busy = timedelta(seconds=5)
    s = Storage(db, busy_timeout=busy)
    stop = threading.Event()

    @cached(storage=s)
    def f(x):
        return x

    def write(i):
        n = 0
        while not stop.is_set():
            n += 1
            s.set_value(f"k{i}", b"v" * (n % 5000))
            f(n % 50)

    @cached(storage=s)
    def forks_inside(x):
        return fork_and_write(x)

    def fork_and_write(round):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(60)  # a hang fails the test, not the run
                fresh = Storage(db, busy_timeout=busy)
                s.set_value(f"child{round}", b"c")
                fresh.set_value(f"fresh{round}", b"c")
                code = 0
            finally:
                os._exit(code)
        return os.waitpid(pid, 0)[1]

    threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        statuses = []
        for round in range(20):
            time.sleep(0.005)
            statuses.append(fork_and_write(round))
        statuses.append(forks_inside(20))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert statuses == [0] * 21
    for round in range(21):
        assert s.get_value(f"child{round}") == s.get_value(f"fresh{round}") == b"c"
    s.close()


def test_cached_refuses_an_async_function_and_points_to_async_cached(storage):
    # Its result would be a coroutine, never awaited and never picklable: refused when
    # decorating, with the decorator to use instead.
    async def f(x):
        return x

    with pytest.raises(TypeError, match="async_cached"):
        cached(storage=storage)(f)
    with pytest.raises(TypeError, match="async_cached"):
        cached(f, storage=storage)

    # An object whose __call__ is async: accepted, then each miss raised pickle's
    # "cannot pickle 'coroutine' object" (and warned of a coroutine never awaited).
    class Fetch:
        async def __call__(self, x):
            return x

    with pytest.raises(TypeError, match="async_cached"):
        cached(storage=storage)(Fetch())
    assert storage.get_keys() == set()


def test_a_function_that_declares_no_signature_is_memoised_by_its_arguments(storage):
    # C functions such as math.log, max and struct.pack declare no signature to inspect:
    # decorating one raised ValueError "no signature found for builtin", where the
    # original (hash(args, kwargs)) took any callable. Keyed by the arguments as given.
    log = cached(storage=storage)(math.log)
    largest = cached(storage=storage)(max)
    pack = cached(storage=storage)(struct.pack)
    assert log(8, 2) == 3.0 and log(8, 2) == 3.0
    assert log(math.e) == 1.0
    assert largest([3, 1, 2]) == 3 and largest(1, 5, key=lambda x: -x) == 1
    assert pack(">I", 7) == b"\x00\x00\x00\x07"
    assert log.cache_key(8, 2) != log.cache_key(8) != largest.cache_key(8, 2)
    assert log.cache_key(8, 2) in storage
    with pytest.raises(TypeError):
        log()  # the function's own error, not the key's
    assert log(8, 2) == 3.0


def test_cached_refuses_generator_functions_when_decorating(storage):
    # A generator is not picklable: each call raised pickle's "cannot pickle
    # 'generator' object" (having run nothing), naming neither the function nor a fix.
    def numbers(n):
        yield from range(n)

    async def anumbers(n):
        yield n

    class Numbers:  # an object whose __call__ is a generator function
        def __call__(self, n):
            yield from range(n)

    for func in (numbers, anumbers, staticmethod(numbers), Numbers()):
        with pytest.raises(TypeError, match=r"(?i)cannot memoise .*numbers.*: it is an? (async )?generator function"):
            cached(storage=storage)(func)
    assert storage.get_keys() == set()


_SCRIPT = """
import sys
import backlite

storage = backlite.Storage(sys.argv[1])


@backlite.cached(storage=storage)
def f(x):
    with open(sys.argv[2], "a") as log:
        log.write("computed\\n")
    return x {op}


def key(x):
    return f.cache_key(x)


if __name__ == "__main__":
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(f(10), key(10) == pool.apply(key, (10,)), pool.apply(f, (10,)))
"""


def test_same_named_functions_of_two_scripts_do_not_share_results(tmp_path, db):
    # Every script's module is "__main__": the key named the function by it alone, so
    # script b's f returned script a's result. A spawned child (its module is
    # "__mp_main__") had other keys than its parent: it computed again.
    log = tmp_path / "log"
    outputs = []
    for folder, op in (("a", "+ 1"), ("b", "* 2"), ("a", "+ 1"), ("b", "* 2")):
        script = tmp_path / folder / "script.py"
        script.parent.mkdir(exist_ok=True)
        script.write_text(_SCRIPT.replace("{op}", op))
        outputs.append(subprocess.run(
            [sys.executable, str(script), db, str(log)], check=True, capture_output=True,
            text=True, cwd=tmp_path,
        ).stdout.split())
    assert outputs == [["11", "True", "11"], ["20", "True", "20"]] * 2
    # Once per script: the second runs and the children found the first run's result.
    assert log.read_text().count("computed") == 2
    # With no file (-c), the function's code tells two programs apart.
    programs = ["\n".join(_SCRIPT.replace("{op}", op).splitlines()[:-5]) + "\nprint(f(10))"
                for op in ("- 1", "- 2")]
    assert [subprocess.run([sys.executable, "-c", p, db, str(log)], check=True,
                           capture_output=True, text=True).stdout for p in programs] == ["9\n", "8\n"]


def test_objects_holding_different_connections_do_not_share_results(storage):
    # A value with no encoding by value and no weak references (a sqlite3 connection)
    # inside an object's fields counted by its type alone: Repo(a).f and Repo(b).f had
    # one key, and the second returned the first's result. The nearest holder with weak
    # references is now keyed by its identity.
    import sqlite3

    class Repo:
        def __init__(self, conn):
            self.conn = conn

        def f(self, x):
            return self.conn.execute("select v from t").fetchone()[0] + str(x)

    class Service:
        def __init__(self, repos):
            self.repos = repos

        def f(self, x):
            return self.repos[0].f(x)

    def over(repo):
        @cached(storage=storage)
        def g(x):
            return repo.f(x)

        return g

    def with_class_attribute(conn):
        class Local:
            c = conn

            def f(self, x):
                return self.c.execute("select v from t").fetchone()[0] + str(x)

        return cached(storage=storage)(Local().f)

    a, b = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    try:
        for db, v in ((a, "a"), (b, "b")):
            db.execute("create table t(v)")
            db.execute("insert into t values (?)", (v,))
        ra, rb = Repo(a), Repo(b)
        assert (cached(storage=storage)(ra.f)(1), cached(storage=storage)(rb.f)(1)) == ("a1", "b1")
        assert (over(ra)(2), over(rb)(2)) == ("a2", "b2")
        assert (with_class_attribute(a)(3), with_class_attribute(b)(3)) == ("a3", "b3")
        sa, sb = Service([ra]), Service([rb])
        assert (cached(storage=storage)(sa.f)(4), cached(storage=storage)(sb.f)(4)) == ("a4", "b4")
        # One object, decorated twice: one key.
        assert cached(storage=storage)(ra.f).cache_key(5) == cached(storage=storage)(ra.f).cache_key(5)
    finally:
        a.close()
        b.close()


_LOOP_CLIENT_KEY_IN_CHILD = """
import asyncio
import json
import backlite

class Client:
    def __init__(self, base):
        self.base = base
        self.loop = asyncio.new_event_loop()

    def fetch(self, path):
        return self.base + path

f = backlite.cached(storage=backlite.Storage(":memory:"))(Client("a").fetch)
print(f.cache_key("/x").hex())
"""


def test_a_client_holding_an_event_loop_keeps_its_key_in_every_process(tmp_path):
    # An event loop (and its selector) only runs things, as a lock only orders them:
    # counted by its type, never by the identity its sockets and epoll would give it.
    assert len(_outputs_under_hash_seeds(_LOOP_CLIENT_KEY_IN_CHILD, tmp_path, ("0", "1"))) == 1


_LIBRARY = """
import sys
import backlite

storage = backlite.Storage(sys.argv[1])


@backlite.cached(storage=storage)
def apply(fn, x):
    return fn(x)
"""

_SCRIPT_PASSING_ITS_FUNCTION = """
import dataclasses
import sys
import mylib


def g(x):
    return x {op}


@dataclasses.dataclass
class Point:
    x: int


def key():
    return mylib.apply.cache_key(g, Point(1))


if __name__ == "__main__":
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(mylib.apply(g, 10), key() == pool.apply(key))
"""


def test_functions_of_two_scripts_given_to_one_memoised_function_do_not_share_results(
    tmp_path, db
):
    # A script's function (or class) in an argument is pickled by reference, as
    # "__main__.g": script b's g given to a library's memoised function returned
    # script a's result, and a spawned child ("__mp_main__.g") had another key.
    (tmp_path / "mylib.py").write_text(_LIBRARY)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    outputs = []
    for folder, op in (("a", "+ 1"), ("b", "* 2"), ("a", "+ 1")):
        script = tmp_path / folder / "script.py"
        script.parent.mkdir(exist_ok=True)
        script.write_text(_SCRIPT_PASSING_ITS_FUNCTION.replace("{op}", op))
        outputs.append(subprocess.run(
            [sys.executable, str(script), db], check=True, capture_output=True, text=True,
            env=env,
        ).stdout)
    assert outputs == ["11 True\n", "20 True\n", "11 True\n"]


def test_nested_functions_of_one_name_that_differ_by_code_do_not_share_results(storage):
    # Both are make.<locals>.f with nothing in their closures: keyed by that name
    # alone, make("*")(10) returned make("+")(10)'s 11.
    def make(op):
        if op == "+":
            def f(x):
                return x + 1
        else:
            def f(x):
                return x * 2
        return cached(storage=storage)(f)

    assert (make("+")(10), make("*")(10)) == (11, 20)
    assert make("+").cache_key(10) == make("+").cache_key(10)


_SCRIPT_WITH_LOCAL_HELPERS = """
import sys
import backlite

storage = backlite.Storage(":memory:")


def make():
    class Local:
        n = 2

    def helper(x):
        return x * Local.n

    return backlite.cached(storage=storage)(lambda x: helper(x))


def key():
    return make().cache_key(1)


if __name__ == "__main__":
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(key() == pool.apply(key))
"""


def test_a_script_closure_over_its_local_function_keeps_its_key_in_a_spawned_child(tmp_path):
    # A local function or class a closure holds is named by its module too: the
    # script's is "__mp_main__" in a spawned child, which had another key.
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT_WITH_LOCAL_HELPERS)
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True,
                         text=True).stdout
    assert out == "True\n"


def test_functions_run_as_main_outside_the_main_module_do_not_share_results(storage):
    # Code run with __name__ == "__main__" in a namespace of its own (exec, as a
    # notebook or a test runner does) makes functions of module "__main__" that are not
    # the main module's: named by it (its file, or its -m name), two such f shared
    # their results. Their code names them instead.
    made = []
    for op in ("+ 1", "* 2"):
        ns = {"__name__": "__main__", "cached": cached, "storage": storage}
        exec(f"@cached(storage=storage)\ndef f(x):\n    return x {op}\n", ns)
        made.append(ns["f"])
    assert (made[0](10), made[1](10)) == (11, 20)


_LOCAL_DATACLASS_KEY_IN_CHILD = """
import dataclasses
import backlite


def make():
    @dataclasses.dataclass(slots=True)
    class Local:
        n: int = dataclasses.field(default=2, metadata={"unit": "m"})

        def times(self, x):
            return self.n * x

    return Local().times


f = backlite.cached(storage=backlite.Storage(":memory:"))(make())
print(f.cache_key(1).hex())
"""


def test_a_method_of_a_local_dataclass_keeps_its_key_in_every_process(tmp_path):
    # A dataclass's fields (its class's __dataclass_fields__) hold their metadata as a
    # mappingproxy, which has no encoding by value nor weak references: since
    # 5561402 the class counted by its identity, a key of this process only. A
    # mappingproxy is now the dict it shows.
    assert len(_outputs_under_hash_seeds(_LOCAL_DATACLASS_KEY_IN_CHILD, tmp_path, ("0", "1"))) == 1


def test_a_decorated_function_is_keyed_by_the_signature_it_is_called_with(storage):
    # The key bound the call to the signature of what functools.wraps says is wrapped:
    # a decorator's own parameter raised TypeError (f(1, retries=5)), and its own
    # default was replaced by the wrapped function's, so g(1) and g(1, y=0) had one
    # key and g(1, y=0) returned g(1)'s 6.
    import functools

    def with_retry(fn):
        @functools.wraps(fn)
        def inner(*args, retries=3, **kwargs):
            return fn(*args, **kwargs), retries

        return inner

    def with_default(fn):
        @functools.wraps(fn)
        def inner(x, y=5):
            return fn(x, y)

        return inner

    @cached(storage=storage)
    @with_retry
    def f(x):
        return x

    @cached(storage=storage)
    @with_default
    def g(x, y=0):
        return x + y

    assert (f(1), f(1, retries=5)) == ((1, 3), (1, 5))
    assert (g(1), g(1, y=0), g(1, 5)) == (6, 1, 6)
