"""Memo keys that are the same in every process and every run.

The seed keyed results by ``hash((args, frozenset(kwargs.items())))``: salted per
process for str and bytes (so nothing was ever found again by another process or run),
blind to which function was called (two functions with the same arguments shared a
result), failing on lists and dicts, and ``f(1)`` and ``f(x=1)`` were different keys.

Here the key names the function (module, qualified name and code) and a BLAKE2b digest of a
canonical encoding of its arguments, bound to the signature with defaults applied.
"""

from __future__ import annotations

import asyncio
import dis
import functools
import hashlib
import io
import itertools
import math
import os
import pickle
import selectors
import struct
import sys
import threading
import weakref
from inspect import Parameter, Signature
from types import CodeType, FunctionType, MappingProxyType, MethodType, ModuleType
from typing import Any, Callable

# Pickle protocol for arguments that have no canonical encoding below: fixed, so the
# key does not change when Python's default protocol does.
_KEY_PICKLE_PROTOCOL = 4


# Objects that cannot be pickled (an instance of a class defined inside a function, a
# lambda, a lock: the `self` of many methods) are keyed by identity, as the seed's
# hash() keyed them: a token per live object, unique to this process, so such a key is
# found again only with that very object. The token dies with the object (an id that
# is reused must not find the old object's results), and the process's nonce makes it
# unique among processes sharing the file.
# Reentrant: a finalizer may run (garbage collection) while this thread holds it.
_identity_lock = threading.RLock()
_identity: dict[int, bytes] = {}
_identity_serial = itertools.count()
_identity_nonce = os.urandom(16).hex()


def _forget_identity(ident: int, token: bytes) -> None:
    with _identity_lock:
        if _identity.get(ident) == token:
            del _identity[ident]


def _identity_token(obj: Any) -> bytes | None:
    """The token of ``obj`` in this process; None when it cannot be told when ``obj``
    dies (no weak references to it)."""
    ident = id(obj)
    with _identity_lock:
        token = _identity.get(ident)
        if token is not None:
            return token
        token = f"{_identity_nonce}:{next(_identity_serial)}".encode()
        try:
            finalizer = weakref.finalize(obj, _forget_identity, ident, token)
        except TypeError:
            return None
        finalizer.atexit = False
        _identity[ident] = token
        return token


def _identity_after_fork_in_child() -> None:
    # The child's objects are copies that may change apart from the parent's: tokens of
    # its own, under a nonce of its own.
    global _identity_lock, _identity_nonce
    _identity_lock = threading.RLock()
    _identity.clear()
    _identity_nonce = os.urandom(16).hex()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_identity_after_fork_in_child)


def function_id(func: Callable[..., Any], cells: list[bytes | None] | None = None) -> str:
    """The function's module and qualified name. A callable that is more than its code
    also names its object, by a digest of its encoding (see ``_encode``): a bound
    method (builtin too) its ``__self__`` (``a.f`` and ``b.f`` are different functions), a callable
    object or a ``functools.partial`` itself (its name was its repr, with its address,
    which the next object there takes over, with the results of the first).
    ``cells``: each closure cell's encoding, None where it is to be read (filled in);
    see ``ClosureWatch``."""
    module = _module_id(getattr(func, "__module__", None) or "?", func)
    qualname = getattr(func, "__qualname__", None)
    if qualname is None:
        bound: Any = func
        qualname = type(func).__qualname__
    else:
        # A builtin function's __self__ is its module: nothing more than its name.
        bound = getattr(func, "__self__", None)
        if isinstance(bound, ModuleType):
            bound = None
    try:
        name = f"{module}.{qualname}" + _made_with(func, cells=cells)
        if bound is func:
            # What it runs (a callable object's __call__, a partial's function): its
            # pickle names that by its name alone, so the key did not follow its code.
            name += _made_with(_what_it_runs(func))
        if bound is None:
            return name
        # By value, not identity, where it can be (a client holding a lock): the key
        # must be found again by the next process and run.
        digest = hashlib.blake2b(encode(bound, by_identity=False, state=True), digest_size=20)
        return f"{name}[{digest.hexdigest()}]"
    except _NoIdentity as e:
        # Made with (or bound to) what neither its value nor its identity can name (a
        # sqlite3 connection): the function is named by its own identity, so that its
        # results are found again only by it, in this process.
        token = _identity_token(func)
        if token is None:
            raise TypeError(
                f"cannot make a cache key for {module}.{qualname}: it is made with a "
                f"value that is not picklable nor weakly referenceable ({e}), nor is it"
            ) from e
        return f"{module}.{qualname}<{token.decode()}>"


def _what_it_runs(obj: Any) -> Any:
    """The Python function a callable object or a ``functools.partial`` runs (None for
    one implemented in C)."""
    for _ in range(16):  # a partial of a partial..., bounded
        if not isinstance(obj, functools.partial):
            break
        obj = obj.func
    if isinstance(obj, (FunctionType, MethodType)):
        return obj
    call = getattr(type(obj), "__call__", None)
    return call if isinstance(call, FunctionType) else None


# The names a script's module runs under: "__main__", and "__mp_main__" when a
# multiprocessing child (spawn, forkserver) runs the script again.
_MAIN_NAMES = frozenset(("__main__", "__mp_main__"))


def _module_id(module: str, func: Callable[..., Any]) -> str:
    """The module part of a function's name. Every script is "__main__": named so alone,
    same-named functions of two scripts on one cache returned each other's results,
    and a spawned child's "__mp_main__" missed its parent's. A script run with ``-m``
    is its module's own name; one run from a file is "__main__(<digest of its real
    path>)", the same in every run and child; one with no file (``-c``, a REPL, a
    notebook), or a function run as "__main__" in a namespace of its own (exec), is
    "__main__(<digest of the function's code>)"."""
    if module not in _MAIN_NAMES:
        return module
    # A function's own namespace, not sys.modules': code run as "__main__" in a
    # namespace of its own (exec) is not the main module's.
    namespace = getattr(func, "__globals__", None)
    if not isinstance(namespace, dict):
        namespace = getattr(sys.modules.get(module), "__dict__", {})
    name = getattr(namespace.get("__spec__"), "name", None)
    if isinstance(name, str) and name not in _MAIN_NAMES:
        return name
    path = namespace.get("__file__")
    if isinstance(path, str):
        return _script_id(path)
    return _code_id(func)


def _code_id(func: Callable[..., Any]) -> str:
    """The module id of a function of a "__main__" with no file, by its code."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType):  # a callable object: its __call__'s
        code = getattr(getattr(type(func), "__call__", None), "__code__", None)
    if not isinstance(code, CodeType):
        return "__main__"
    what = b"code:" + _code_bytes(code)
    return "__main__(" + hashlib.blake2b(what, digest_size=12).hexdigest() + ")"


@functools.lru_cache(maxsize=64)
def _script_id(path: str) -> str:
    """A script's module id by its real path; cached: an argument of one of its classes
    asks for it at every call, and realpath() is most of a call's time."""
    what = b"file:" + os.fsencode(os.path.realpath(path))
    return "__main__(" + hashlib.blake2b(what, digest_size=12).hexdigest() + ")"


def _qualified(obj: Any) -> str:
    """A function's or class's module id and qualified name."""
    return f"{_module_id(str(obj.__module__), obj)}.{obj.__qualname__}"


def _made_with(
    func: Callable[..., Any], seen: list[int] | None = None,
    cells: list[bytes | None] | None = None,
) -> str:
    """``{digest}`` of what tells apart functions of one name: the values a closure was
    made with (at decoration), and its code. Every function a factory makes has
    the factory's name for it, and every lambda of a scope one name: keyed by the name
    alone, ``make(3)`` got ``make(2)``'s results. The code: two nested functions of one
    name that differ by code alone (``def f`` in each branch of an ``if`` in a
    factory) shared their results, and a function of a module whose body was edited
    returned its old body's results in the next run. Its code, not its lines: a
    function added above it keeps its key. Empty for what has no code (a builtin).
    ``cells``: encodings already made (None: read the cell), filled in here."""
    code = getattr(func, "__code__", None)
    closure = getattr(func, "__closure__", None) or ()
    by_code = isinstance(code, CodeType)
    if not closure and not by_code:
        return ""
    h = hashlib.blake2b(digest_size=12)
    for i, cell in enumerate(closure):
        part = None if cells is None else cells[i]
        if part is None:
            part = _cell_bytes(cell, seen)
            if cells is not None:
                cells[i] = part
        h.update(part)
    if by_code:
        h.update(_code_bytes(code))
    return "{" + h.hexdigest() + "}"


def _cell_bytes(cell: Any, seen: list[int] | None = None) -> bytes:
    try:
        value = cell.cell_contents
    except ValueError:  # not yet assigned (the function itself, for recursion)
        return b"E"
    # By value where it can be (see _encode_by_value), so that keys stay the same in
    # every process; else by identity, never by its type alone.
    b = encode(value, by_identity=False, state=True, seen=seen)
    return _len(len(b)) + b


_EMPTY = object()


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY


def _assigned_free_names(code: CodeType) -> set[str]:
    """The names a function (or a function nested in it) assigns or deletes as
    ``nonlocal``: its own counters."""
    names = {
        i.argval for i in dis.get_instructions(code)
        if i.opname in ("STORE_DEREF", "DELETE_DEREF")
    }
    for c in code.co_consts:
        if isinstance(c, CodeType):
            names |= _assigned_free_names(c)
    return names


class ClosureWatch:
    """The name of a closure, kept up to date. A closure reads its variables when it
    runs, not when it was made: the functions a loop makes all see the loop variable's
    last value, and a variable the enclosing function assigns after decorating gives
    what it holds then. Named by the values read at decoration alone, such a function
    shared a key with one that computes with those values (a wrong result). So a
    variable assigned again since (another object in its cell) is read again at the
    call; the key of the values it holds is the one they always have. Not watched: a
    variable the function assigns itself (a counter it keeps: its results do not follow
    it), one empty at decoration or holding the function itself (recursion), and what
    changes inside an object held (a list appended to keeps its key, as a global
    read does)."""

    __slots__ = ("_func", "_cells", "_state")

    def __init__(self, func: Callable[..., Any], cells: list[tuple[int, Any]], fid: str,
                 parts: list[bytes | None]) -> None:
        self._func = func
        self._cells = cells
        # (the values the name was made with, their cells' encodings, the name):
        # replaced whole, so that threads read one consistent state.
        self._state = (tuple(_cell_value(c) for _, c in cells), parts, fid)

    @staticmethod
    def of(func: Callable[..., Any]) -> tuple[str, ClosureWatch | None]:
        """``func``'s ``function_id``, and a watch when its closure has cells to watch."""
        closure = getattr(func, "__closure__", None) or ()
        code = getattr(func, "__code__", None)
        parts: list[bytes | None] = [None] * len(closure)
        fid = function_id(func, parts if closure else None)
        if not closure or not isinstance(code, CodeType):
            return fid, None
        own = _assigned_free_names(code)
        target = getattr(func, "__func__", func)
        cells = [
            (i, cell) for i, (name, cell) in enumerate(zip(code.co_freevars, closure))
            if name not in own
            and all(_cell_value(cell) is not v for v in (_EMPTY, target, func))
        ]
        if not cells:
            return fid, None
        return fid, ClosureWatch(func, cells, fid, parts)

    def function_id(self) -> str:
        values, parts, fid = self._state
        now = tuple(_cell_value(c) for _, c in self._cells)
        if all(a is b for a, b in zip(now, values)):
            return fid
        parts = list(parts)
        for (i, _), old, new in zip(self._cells, values, now):
            if old is not new:
                parts[i] = None
        fid = function_id(self._func, parts)
        self._state = (now, parts, fid)
        return fid


def _code_bytes(code: CodeType) -> bytes:
    """What a code object does, the same in every process (a nested code object's repr
    has its address; a frozenset's order depends on the hash seed)."""
    consts = tuple(
        _code_bytes(c) if isinstance(c, CodeType) else c for c in code.co_consts
    )
    return encode((code.co_code, code.co_names, consts), by_identity=False)


# Ints of at most this many bits (603 decimal digits) are written in decimal: Python
# writes up to 640 digits whatever sys.set_int_max_str_digits() says.
_DECIMAL_BITS = 2000


def _len(n: int) -> bytes:
    return str(n).encode() + b":"


# Types whose instances are interchangeable for what a function computes: a lock only
# orders callers, an event loop (and its selector) only runs them; none holds a value.
# A closure over one (or an object holding one) is keyed by the type, so that its key
# is the same in every process.
_VALUELESS = (
    type(threading.Lock()), type(threading.RLock()), asyncio.AbstractEventLoop,
    selectors.BaseSelector,
)
_VALUELESS_NAMES = frozenset(
    f"multiprocessing.synchronize.{n}"
    for n in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier")
)


def _encode(
    obj: Any, out: list[bytes], by_identity: bool = True, state: bool = False,
    seen: list[int] | None = None,
) -> None:
    """Appends an unambiguous encoding of ``obj``: equal values give equal bytes
    (sets in any order, dicts in their own), values of different types give different
    bytes.
    An object that cannot be pickled is taken by its identity (``by_identity``), or
    (``state``) by value where it can be (see ``_encode_by_value``)."""
    t = type(obj)
    if obj is None:
        out.append(b"N")
    elif t is bool:
        out.append(b"T" if obj else b"F")
    elif t is int:
        if obj.bit_length() <= _DECIMAL_BITS:
            out.append(b"i" + str(obj).encode() + b";")
        else:  # decimal is refused beyond sys.get_int_max_str_digits(); hex never is
            out.append(b"I" + format(obj, "x").encode() + b";")
    elif t is float:
        if math.isnan(obj):  # by its bits: its sign and payload, which hex() drops
            out.append(b"n" + struct.pack(">d", obj).hex().encode() + b";")
        else:
            out.append(b"f" + obj.hex().encode() + b";")
    elif t is str:
        b = obj.encode("utf-8", "surrogatepass")
        out.append(b"s" + _len(len(b)) + b)
    elif t is bytes:
        out.append(b"b" + _len(len(obj)) + obj)
    elif t is tuple:
        out.append(b"(" + _len(len(obj)))
        for x in obj:
            _encode(x, out, by_identity, state, seen)
    elif t is list or t is dict:
        # A list or dict may hold itself (a cycle, else RecursionError): where it does,
        # a reference back to it, by how many containers up it is, as for a recursive
        # local function in _encode_by_value; the same structure gives the same bytes.
        if seen is None:
            seen = []
        elif id(obj) in seen:
            out.append(b"r" + str(len(seen) - seen.index(id(obj))).encode() + b";")
            return
        seen.append(id(obj))
        try:
            if t is list:
                out.append(b"[" + _len(len(obj)))
                for x in obj:
                    _encode(x, out, by_identity, state, seen)
            else:
                # In its order: a dict keeps it, and what is computed from it may show
                # it (JSON, a table's columns). A set's order is not the same in every
                # process (str hashes are salted), so sets are sorted below.
                out.append(b"D" + _len(len(obj)))
                for k, v in obj.items():
                    _encode(k, out, by_identity, state, seen)
                    _encode(v, out, by_identity, state, seen)
        finally:
            seen.pop()
    elif t is set or t is frozenset:
        items = sorted(encode(x, by_identity, state, seen) for x in obj)
        out.append((b"<" if t is set else b">") + _len(len(items)))
        out.extend(_len(len(i)) + i for i in items)
    elif t is memoryview:
        # Pickle refuses a view, which then counted by its identity: a new view of the
        # same bytes never found a result. By what it shows, as a bytearray is; a
        # released one raises ValueError here, as reading it in the function would.
        fmt = obj.format.encode()
        out.append(b"v" + _len(len(fmt)) + fmt)
        _encode(obj.shape, out)
        data = obj.tobytes()
        out.append(_len(len(data)) + data)
    else:
        module = t.__module__
        if module in _MAIN_NAMES:  # a script's class: by the script's name, as its pickle
            module = _module_id(module, t)
        name = f"{module}.{t.__qualname__}".encode()
        try:
            b = _key_pickle(obj)
        except Exception as e:
            if not by_identity and state:
                _encode_by_value(obj, name, out, [] if seen is None else seen, e)
                return
            if not by_identity:
                out.append(b"t" + _len(len(name)) + name)
                return
            out.append(b"o" + _len(len(name)) + name + _identity_bytes(obj, e))
            return
        out.append(b"p" + _len(len(name)) + name + _len(len(b)) + b)


def _key_pickle(obj: Any) -> bytes:
    """``obj``'s pickle as a key's part: equal objects give equal bytes, in every
    process. Made without pickle's memo (fast mode), which wrote an object met twice
    as a reference to the first: ``P(s, s)`` and ``P(s, t)`` of two equal strings
    (one read from a file, say) were two keys for one call. Where the plain pickle
    shows a script's name or a set, again by ``_KeyPickler``, which names scripts and
    writes sets in a fixed order (a set's order follows the process's hash seed)."""
    try:
        b = _dump(_FirstPickler, obj)
    except _NeedsKeyPickler:
        return _dump(_KeyPickler, obj)
    # EMPTY_SET and FROZENSET, the opcodes of a set (bytes of data may match too:
    # then only the slower pickler runs, for the same bytes).
    if b"__main__" in b or b"__mp_main__" in b or b"\x8f" in b or b"\x91" in b:
        b = _dump(_KeyPickler, obj)
    return b


class _NeedsKeyPickler(Exception):
    """Raised by ``_FirstPickler`` at an object only ``_KeyPickler`` writes the same in
    every process."""


class _FirstPickler(pickle.Pickler):
    """The plain pickler, but for a subclass of set or frozenset: pickled by its
    ``__reduce__``, as its class and a list of its items in the order of their hashes
    (salted per process), with no set opcode to send the pickle to ``_KeyPickler``, so
    that every process had its own key for the call. It sends it there itself.
    ``reducer_override`` is not called for exact builtins (ints, strs, tuples, sets), so
    a pickle of those costs nothing more."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (set, frozenset)):
            raise _NeedsKeyPickler
        return NotImplemented


def _dump(pickler: type[pickle.Pickler], obj: Any) -> bytes:
    buf = io.BytesIO()
    p = pickler(buf, protocol=_KEY_PICKLE_PROTOCOL)
    p.fast = True
    try:
        p.dump(obj)
    except ValueError as e:
        # Fast mode refuses an object that holds itself (a node with its parent): with
        # the memo, which a structure built the same way fills the same way.
        if not str(e).startswith("fast mode"):
            raise
        buf = io.BytesIO()
        pickler(buf, protocol=_KEY_PICKLE_PROTOCOL).dump(obj)
    return buf.getvalue()


class _KeyPickler(pickle.Pickler):
    """Pickles a script's functions and classes (pickled by reference, as
    ``__main__.g``) under the script's own name (``_module_id``): two scripts' ``g``
    given to one memoised function shared its results, and a spawned child's
    (``__mp_main__.g``) missed its parent's. And a set (or frozenset, or a subclass)
    by its items' pickles in sorted order: in a pickled object (a dataclass's field)
    its items came in the order of their hashes, salted per process, so each process
    had its own key for the call."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, FunctionType)) and obj.__module__ in _MAIN_NAMES:
            return _script_global, (_module_id(obj.__module__, obj), obj.__qualname__)
        return NotImplemented

    def persistent_id(self, obj: Any) -> Any:
        # Asked first for every object, sets included (reducer_override is not).
        if not isinstance(obj, (set, frozenset)):
            return None
        items = tuple(sorted(_key_pickle(x) for x in obj))
        t = type(obj)
        return ("set", t, items, None if t in (set, frozenset) else getattr(obj, "__dict__", None))


def _script_global(module: str, qualname: str) -> None:
    """Names a script's function or class in a key's pickle; keys are never loaded."""
    raise TypeError("a memo key's pickle is not loaded")


def _identity_bytes(obj: Any, e: Exception) -> bytes:
    token = _identity_token(obj)
    if token is None:
        raise TypeError(
            f"cannot make a cache key from an argument of type {type(obj).__qualname__}: "
            f"it is not picklable ({e}) nor weakly referenceable. Pass "
            "param_hash_func= to the decorator."
        ) from e
    return _len(len(token)) + token


class _NoIdentity(TypeError):
    """A value a function is made with (or bound to) has no encoding by value and no
    weak references: ``function_id`` names that function by its own identity."""


def _encode_by_value(obj: Any, name: bytes, out: list[bytes], seen: list[int], e: Exception) -> None:
    """``obj``, which pickle refuses, as what a function that closes over it (or is bound
    to it) computes with, the same in every process where it can be: a module by its
    name, a class by its name, bases and attributes, a function by its name, code and
    closure, a lock by its type
    (_VALUELESS), a file opened by name by its absolute name and mode, anything else
    by what pickle would rebuild it from
    (``__reduce_ex__``: its class, arguments and fields, each encoded so; not
    ``__getstate__``: a partial's has no function nor arguments). What none of these
    tell (a socket, a file opened from a descriptor, an object refusing pickle) is keyed
    by its identity: by its type alone, functions made over two open files shared
    their results. One with no weak references either (a sqlite3 connection) raises
    _NoIdentity: the nearest object holding it that has weak references is keyed by
    its identity instead (by the connection's type, Repo(conn_a).f and
    Repo(conn_b).f shared their results), or else the function by its own."""
    if id(obj) in seen:  # a cycle (a recursive local function): where it began
        out.append(b"r" + str(len(seen) - seen.index(id(obj))).encode() + b";")
        return
    if isinstance(obj, ModuleType):
        out.append(b"m" + _len(len(n := obj.__name__.encode())) + n)
        return
    if isinstance(obj, _VALUELESS) or name.decode() in _VALUELESS_NAMES:
        out.append(b"t" + _len(len(name)) + name)
        return
    if isinstance(obj, MappingProxyType):  # a read-only dict (a dataclass field's metadata)
        out.append(b"M")
        _encode(dict(obj), out, False, True, seen)
        return
    if isinstance(obj, weakref.ref):  # what it refers to (None once that is gone)
        out.append(b"w")
        _encode(obj(), out, False, True, seen)
        return
    path = getattr(obj, "name", None) if isinstance(obj, io.IOBase) else None
    if isinstance(path, (str, bytes)):  # a file opened by name: that file (not an fd)
        # Not a stream's "<stdout>": joined to the folder, its key would change with it.
        if not path.startswith("<" if isinstance(path, str) else b"<"):
            path = os.path.abspath(path)
        fields = encode((path, getattr(obj, "mode", None)))
        out.append(b"F" + _len(len(name)) + name + _len(len(fields)) + fields)
        return
    seen.append(id(obj))
    try:
        if isinstance(obj, type):  # a class defined in a function
            try:
                fields = _class_bytes(obj, seen)
            except _NoIdentity:
                _encode_identity_of_holder(obj, name, out)
                return
            out.append(b"c" + _len(len(fields)) + fields)
            return
        if isinstance(obj, FunctionType):
            fields = encode(
                (_qualified(obj), _code_bytes(obj.__code__),
                 _made_with(obj, seen))
            )
            out.append(b"g" + _len(len(fields)) + fields)
            return
        try:
            rebuilt = obj.__reduce_ex__(_KEY_PICKLE_PROTOCOL)
        except Exception:  # a file's or a socket's refuses
            rebuilt = None
        if rebuilt is None:
            token = _identity_token(obj)
            if token is None:
                raise _NoIdentity(f"{type(obj).__qualname__}: {e}")
            out.append(b"o" + _len(len(name)) + name + _len(len(token)) + token)
            return
        try:
            fields = encode(rebuilt, by_identity=False, state=True, seen=seen)
        except _NoIdentity:
            _encode_identity_of_holder(obj, name, out)
            return
        out.append(b"u" + _len(len(name)) + name + _len(len(fields)) + fields)
    finally:
        seen.pop()


def _encode_identity_of_holder(obj: Any, name: bytes, out: list[bytes]) -> None:
    """``obj``, among whose fields is a value with neither an encoding by value nor weak
    references, by its own identity; if it has none either, _NoIdentity goes on to
    the object holding it."""
    token = _identity_token(obj)
    if token is None:
        raise _NoIdentity(f"{type(obj).__qualname__} holds a value with no identity")
    out.append(b"o" + _len(len(name)) + name + _len(len(token)) + token)


def _class_bytes(cls: type, seen: list[int]) -> bytes:
    """A class pickle refuses (one defined in a function) by its name, its bases and its
    own attributes: classes a factory makes have one name, and differ by the values
    they were made with (a class attribute, a method's closure). An attribute with no
    encoding by value nor weak references raises _NoIdentity (the class is then keyed
    by its identity)."""
    attrs = []
    for attr, value in sorted(vars(cls).items()):
        if attr in ("__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = (value.fget, value.fset, value.fdel)
        attrs.append((attr, encode(value, by_identity=False, state=True, seen=seen)))
    bases = [encode(b, by_identity=False, state=True, seen=seen) for b in cls.__bases__]
    return encode((_qualified(cls), bases, attrs))


def encode(
    obj: Any, by_identity: bool = True, state: bool = False, seen: list[int] | None = None
) -> bytes:
    out: list[bytes] = []
    _encode(obj, out, by_identity, state, seen)
    return b"".join(out)


def bind(sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    """The call's arguments by parameter name, defaults applied: ``f(1)``, ``f(x=1)``
    and (when 1 is x's default) ``f()`` give the same list. ``*args`` stays a tuple,
    ``**kwargs`` a dict (encoded in the order given, which the function sees)."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return list(bound.arguments.items())


def _encode_argument(value: Any, default: Any) -> bytes:
    """An argument's encoding. Its parameter's default (given or not) is part of the
    function, as what a closure holds is: by value where pickle refuses it, as a closure
    value is (a client holding a lock, by its type and fields), not by its identity,
    which gave each process and run its own key for ``fetch(path)`` and never found an
    earlier run's result. Other arguments keep identity."""
    if value is default:
        try:
            return encode(value, by_identity=False, state=True)
        except _NoIdentity:
            pass  # by identity: the argument's own error where it has none either
    return encode(value)


def param_hash(sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], /) -> str:
    """The default ``ParamHashFunc``: a hex BLAKE2b digest of the bound arguments."""
    h = hashlib.blake2b(digest_size=20)
    params = sig.parameters
    for name, value in bind(sig, args, kwargs):
        h.update(encode(name))
        h.update(_encode_argument(value, params[name].default))
    return h.hexdigest()


def make_param_hash(sig: Signature) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    """``param_hash`` bound to ``sig``, with a fast path for the common signature (plain
    parameters, no ``*args``/``**kwargs``) that gives the very same digest."""
    params = list(sig.parameters.values())
    if not all(p.kind is Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return lambda args, kwargs: param_hash(sig, args, kwargs)
    names = tuple(p.name for p in params)
    encoded_names = [encode(n) for n in names]
    defaults = {p.name: p.default for p in params if p.default is not Parameter.empty}
    default_of = tuple(p.default for p in params)
    count = len(names)
    missing = object()

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if len(args) > count:
            return param_hash(sig, args, kwargs)  # raises the usual TypeError
        values = list(args)
        for name in names[len(args):]:
            value = kwargs.get(name, missing)
            if value is missing:
                value = defaults.get(name, missing)
                if value is missing:
                    return param_hash(sig, args, kwargs)  # raises
            values.append(value)
        if kwargs and (len(kwargs) + len(args) > count or not set(kwargs) <= set(names[len(args):])):
            return param_hash(sig, args, kwargs)  # raises
        h = hashlib.blake2b(digest_size=20)
        for en, value, default in zip(encoded_names, values, default_of, strict=True):
            h.update(en)
            h.update(_encode_argument(value, default))
        return h.hexdigest()

    return fast


def memo_key(func_id: str, params: str) -> bytes:
    return f"backlite.memo:{func_id}:{params}".encode()

