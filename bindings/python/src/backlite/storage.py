"""``Storage``: the seed's key-value API over a libbacklite handle."""

from __future__ import annotations

import builtins
import itertools
import os
import sys
import threading
import weakref
from collections.abc import Collection, Iterable, Mapping
from ctypes import byref, c_int64, c_void_p, pointer, string_at
from datetime import timedelta
from pathlib import Path
from typing import Any, Union

from backlite import _ffi
from backlite._ffi import EXPIRATION_DEFAULT, EXPIRATION_NEVER, NOT_FOUND, OK, TOO_LARGE, lib
from backlite.types import (
    EVICTION_POLICIES,
    REMOTE_MODES,
    CacheItem,
    CheckReport,
    EvictionPolicy,
    RemoteStats,
    Stats,
)

Key = Union[str, bytes]

VERSION_TAG = f"python-{sys.version_info.major}.{sys.version_info.minor}"
"""The C version tag: a file last opened under another Python major.minor is emptied
on open (its pickles may not load), not on a patch release."""

_MS = timedelta(milliseconds=1)
_I64_MAX = 2**63 - 1


def key_bytes(key: Key) -> bytes:
    """A string key is its UTF-8 bytes; bytes keys are taken as they are."""
    if type(key) is str:
        return key.encode()
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, str):
        return str(key).encode()
    raise TypeError(f"a cache key is str or bytes, not {type(key).__name__}")


def _decode_key(raw: bytes) -> Key:
    """Keys read back from the file: str when they are UTF-8, else bytes."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def expiration_ms(expiration: timedelta | None) -> int:
    """None: the storage's default. A timedelta: milliseconds, rounded up (so a
    positive duration never becomes "already expired"), at least 0."""
    if expiration is None:
        return EXPIRATION_DEFAULT
    if not isinstance(expiration, timedelta):
        raise TypeError(f"expiration is a datetime.timedelta or None, not {type(expiration).__name__}")
    if expiration <= timedelta(0):
        return 0
    ms = -(-expiration // timedelta(microseconds=1) // 1000)  # ceil
    return min(ms, _I64_MAX)


def _value_bytes(item: Any) -> bytes:
    try:
        value = item["value"]
    except (TypeError, KeyError):
        raise TypeError('a cache item is a dict {"value": bytes, "expiration": timedelta}') from None
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f'a cache item\'s "value" is bytes, not {type(value).__name__}')


# Storages open in this process, reopened lazily in a forked child (a SQLite handle
# must not be used across fork()).
_live: weakref.WeakSet[Storage] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for storage in list(_live):
        storage._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# The key visitor: one C callback for the process; user_data is a ticket into
# _visits, where each running keys() call keeps its list.
_visits: dict[int, list] = {}
_tickets = itertools.count(1)


@_ffi.KEY_VISITOR
def _visit_key(user_data: int, key: int, key_len: int) -> int:
    try:
        _visits[user_data].append(string_at(key, key_len))
        return 0
    except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
        _visits[user_data].append(exc)
        return 1


# The chunk visitor of get_to(): user_data is a ticket into _sinks, where each running
# call keeps [file, exception or None].
_sinks: dict[int, list] = {}


@_ffi.CHUNK_VISITOR
def _visit_chunk(user_data: int, chunk: int, chunk_len: int) -> int:
    sink = _sinks[user_data]
    try:
        sink[0].write(string_at(chunk, chunk_len))
        return 0
    except BaseException as exc:  # noqa: BLE001 - re-raised after the C call
        sink[1] = exc
        return 1


class _Scratch:
    """Per-thread out-parameters for the hot read path, made once: a get then creates no
    ctypes object (about a fifth of a get's cost in Python)."""

    __slots__ = ("buf", "pbuf", "left", "pleft", "err", "perr", "busy")

    def __init__(self) -> None:
        self.busy = False
        self.buf = _ffi.Buf()
        self.pbuf = pointer(self.buf)
        self.left = c_int64()
        self.pleft = pointer(self.left)
        self.err = c_void_p()
        self.perr = pointer(self.err)


_tls = threading.local()


def _scratch() -> _Scratch:
    try:
        sc = _tls.scratch
    except AttributeError:
        _tls.scratch = sc = _Scratch()
    if sc.busy:  # re-entered on this thread (a signal handler): one of its own
        return _Scratch()
    return sc


_get = lib.backlite_storage_get
_buf_free = lib.backlite_buf_free


class Storage:
    """A persistent key-value cache in one file, bounded in size, evicting by policy.

    Usable from any number of threads at once, and by any number of processes on the
    same file. ``":memory:"`` opens a private in-memory cache.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        size_limit: int | None = None,
        eviction_policy: EvictionPolicy = "least-recently-used",
        default_expiration: timedelta | None = None,
        max_size: int | None = None,
        busy_timeout: timedelta | None = None,
        lease_length: timedelta | None = None,
        mkdir: bool = True,
        remote: str | None = None,
        remote_namespace: str | None = None,
        remote_timeout: timedelta | None = None,
        remote_mode: str = "read-write",
    ) -> None:
        """Open (or create) the cache at ``location``.

        Args:
            location: the cache file, or ``":memory:"``.
            size_limit: approximate bound on the sum of the stored values' lengths,
                in bytes (1 GiB by default). ``max_size`` is the same option under the
                name the seed's README uses.
            eviction_policy: one of ``EVICTION_POLICIES``.
            default_expiration: how long items set without an expiration live
                (``None``: forever).
            busy_timeout: how long to wait for a lock held by another process
                (5 s by default).
            lease_length: how long ``async_cached``'s (and ``cached``'s) claim on a
                key lasts between two renewals (30 s by default). The library renews it
                while the value is computed, so it bounds only how long a holder that
                stops (a stopped process, or a dead one on another host or in another
                PID namespace) blocks its key.
            mkdir: create the file's parent folder when missing.
            remote: a shared remote tier on Redis / Valkey
                (``"redis://[user[:password]@]host[:port][/db]"``, ``"rediss://..."``,
                ``"redis+unix:///path"``, ``"redis+cluster://h:p,h:p"``,
                ``"rediss+cluster://..."``); ``None``: local only.
            remote_namespace: the prefix of every remote key (``"backlite"``).
            remote_timeout: the bound on every remote round trip (250 ms).
            remote_mode: one of ``REMOTE_MODES``: ``"read-write"``, ``"read-only"``,
                ``"write-behind"``.
        """
        if remote_mode not in REMOTE_MODES:
            raise ValueError(
                f"Invalid remote mode: {remote_mode!r} (one of {', '.join(REMOTE_MODES)})"
            )
        if remote_timeout is not None and (
            not isinstance(remote_timeout, timedelta) or remote_timeout <= timedelta(0)
        ):
            raise ValueError("remote_timeout must be a positive datetime.timedelta")
        self._remote = (remote, remote_namespace, remote_timeout, remote_mode)
        if size_limit is not None and max_size is not None and size_limit != max_size:
            raise TypeError("size_limit and max_size are the same option: give one")
        limit = size_limit if size_limit is not None else max_size
        if limit is None:
            limit = 1024**3
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"size_limit must be a positive int, got {limit!r}")
        if eviction_policy not in EVICTION_POLICIES:
            raise ValueError(
                f"Invalid eviction policy: {eviction_policy!r} "
                f"(one of {', '.join(sorted(EVICTION_POLICIES))})"
            )
        if default_expiration is not None and not isinstance(default_expiration, timedelta):
            raise TypeError("default_expiration is a datetime.timedelta or None")
        location = os.fspath(location)
        if isinstance(location, bytes):
            location = os.fsdecode(location)
        self._ptr: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.location: str = location
        self.size_limit: int = limit
        self.eviction_policy: EvictionPolicy = eviction_policy
        self.default_expiration: timedelta | None = default_expiration
        self._busy_timeout = busy_timeout
        self._lease_length = lease_length
        if mkdir and location != ":memory:":
            Path(location).parent.mkdir(parents=True, exist_ok=True)
        self._ptr = self._open()
        _live.add(self)

    @property
    def max_size(self) -> int:
        """The size limit (the README's name for ``size_limit``)."""
        return self.size_limit

    def _open(self) -> int:
        opts = lib.backlite_options_new()
        if not opts:
            raise MemoryError("backlite_options_new")
        try:
            self._check(lib.backlite_options_set_max_size(opts, self.size_limit))
            self._check(
                lib.backlite_options_set_eviction_policy_name(opts, self.eviction_policy.encode())
            )
            if self.default_expiration is not None:
                ms = expiration_ms(self.default_expiration)
                self._check(lib.backlite_options_set_default_expiration_ms(opts, ms))
            if self._busy_timeout is not None:
                ms = max(0, min(2**32 - 1, expiration_ms(self._busy_timeout)))
                self._check(lib.backlite_options_set_busy_timeout_ms(opts, ms))
            if self._lease_length is not None:
                self._check(lib.backlite_options_set_lease_ms(opts, expiration_ms(self._lease_length)))
            self._check(lib.backlite_options_set_version_tag(opts, VERSION_TAG.encode()))
            remote, namespace, timeout, mode = self._remote
            if remote is not None:
                self._check(lib.backlite_options_set_remote(opts, remote.encode()))
            if namespace is not None:
                self._check(lib.backlite_options_set_remote_namespace(opts, namespace.encode()))
            if timeout is not None:
                ms = max(1, min(2**32 - 1, expiration_ms(timeout)))
                self._check(lib.backlite_options_set_remote_timeout_ms(opts, ms))
            self._check(lib.backlite_options_set_remote_mode(opts, REMOTE_MODES[mode]))
            handle = c_void_p()
            err = c_void_p()
            rc = lib.backlite_storage_open(self.location.encode(), opts, byref(handle), byref(err))
            if rc != OK or not handle.value:
                raise _ffi.take_error(rc, err)
            return handle.value
        finally:
            lib.backlite_options_free(opts)

    @staticmethod
    def _check(rc: int) -> None:
        if rc != OK:
            raise _ffi.take_error(rc, c_void_p())

    def _forked(self) -> None:
        # In a forked child: leave the parent's handle alone (never use or free it
        # here) and open a new one on first use.
        self._lock = threading.Lock()
        if self._ptr is not None:
            self._ptr = None

    def _handle(self) -> int:
        """The handle, reopened after fork(); raises once closed."""
        ptr = self._ptr
        if ptr is not None:
            return ptr
        with self._lock:
            if self._closed:
                raise ValueError("operation on a closed Storage")
            if self._ptr is None:
                self._ptr = self._open()
            return self._ptr

    # -- the seed's API ------------------------------------------------------------

    def get_one(self, key: Key) -> CacheItem | None:
        """The item under ``key``, or None. ``expiration`` is the time left, absent
        when the item never expires."""
        kb = key.encode() if type(key) is str else key_bytes(key)
        return self._get(self._ptr or self._handle(), kb)

    get = get_one  # the README's name

    def _get(self, ptr: int, kb: bytes) -> CacheItem | None:
        sc = _scratch()
        sc.busy = True
        try:
            rc = _get(ptr, kb, len(kb), sc.pbuf, sc.pleft, sc.perr)
            if rc == OK:
                value = string_at(sc.buf.data, sc.buf.len)
                _buf_free(sc.pbuf)
                ms = sc.left.value
                if ms == EXPIRATION_NEVER:
                    return {"value": value}
                return {"value": value, "expiration": timedelta(milliseconds=ms)}
            return self._get_failed(rc, sc)
        finally:
            sc.busy = False

    @staticmethod
    def _get_failed(rc: int, sc: _Scratch) -> None:
        err = c_void_p(sc.err.value)
        sc.err.value = None
        if rc == NOT_FOUND:
            if err.value:
                lib.backlite_error_free(err)
            return None
        raise _ffi.take_error(rc, err)

    def get_value(self, key: Key) -> bytes | None:
        """The bytes under ``key``, or None (``get_one`` without the dict)."""
        return self._get_value(self._handle(), key_bytes(key))

    def _get_value(self, ptr: int, kb: bytes) -> bytes | None:
        sc = _scratch()
        sc.busy = True
        try:
            rc = _get(ptr, kb, len(kb), sc.pbuf, None, sc.perr)
            if rc == OK:
                value = string_at(sc.buf.data, sc.buf.len)
                _buf_free(sc.pbuf)
                return value
            return self._get_failed(rc, sc)
        finally:
            sc.busy = False

    def get_to(self, key: Key, file: Any) -> bool:
        """Writes the value under ``key`` to ``file`` (anything with ``write(bytes)``: an
        open file, a socket's file, ``io.BytesIO``) in chunks of at most 256 KiB, so
        that a value of any size is copied in bounded memory. True when the whole value
        was written and its checksum matched; False on a miss, or when the value proved
        damaged after some chunks were written (discard them: the entry is removed).
        An exception raised by ``file.write`` stops the copy and is re-raised."""
        kb = key_bytes(key)
        ptr = self._handle()
        ticket = next(_tickets)
        sink: list = [file, None]
        _sinks[ticket] = sink
        err = c_void_p()
        try:
            rc = lib.backlite_storage_get_chunks(
                ptr, kb, len(kb), _visit_chunk, ticket, None, byref(err)
            )
        finally:
            del _sinks[ticket]
        if sink[1] is not None:
            if err.value:
                lib.backlite_error_free(err)
            raise sink[1]
        if rc == OK:
            return True
        if rc == NOT_FOUND:
            return False
        raise _ffi.take_error(rc, err)

    def get_many(self, keys: Collection[Key] | None = None) -> dict[Key, CacheItem]:
        """The live items among ``keys`` (all of them when None), by key. Keys read
        from the file come back as str, or as bytes when they are not UTF-8."""
        ptr = self._handle()
        if keys is None:
            pairs: Iterable[tuple[Key, bytes]] = ((_decode_key(k), k) for k in self._raw_keys(ptr))
        else:
            pairs = ((k, key_bytes(k)) for k in keys)
        out: dict[Key, CacheItem] = {}
        for k, kb in pairs:
            item = self._get(ptr, kb)
            if item is not None:
                out[k] = item
        return out

    def set_one(self, key: Key, item: CacheItem) -> None:
        """Store ``item`` under ``key``. A value larger than the size limit is not
        stored (and an older value under that key is removed), as in the seed."""
        kb = key.encode() if type(key) is str else key_bytes(key)
        self._set(self._ptr or self._handle(), kb, item)

    set = set_one  # the README's name

    def _set(self, ptr: int, kb: bytes, item: CacheItem) -> None:
        value = _value_bytes(item)
        exp = item.get("expiration")
        ms = EXPIRATION_DEFAULT if exp is None else expiration_ms(exp)
        err = c_void_p()
        rc = lib.backlite_storage_set(ptr, kb, len(kb), value, len(value), ms, byref(err))
        if rc != OK:
            if rc == TOO_LARGE:  # not stored, as in the seed; the old value is gone
                lib.backlite_error_free(err)
                return
            raise _ffi.take_error(rc, err)

    def set_value(self, key: Key, value: bytes, expiration: timedelta | None = None) -> None:
        """``set_one`` without the dict."""
        kb = key_bytes(key)
        ms = expiration_ms(expiration)
        err = c_void_p()
        rc = lib.backlite_storage_set(self._handle(), kb, len(kb), value, len(value), ms, byref(err))
        if rc != OK and rc != TOO_LARGE:
            raise _ffi.take_error(rc, err)
        if rc == TOO_LARGE:
            lib.backlite_error_free(err)

    def set_many(self, items: Mapping[Key, CacheItem]) -> None:
        """Store all ``items`` in one transaction, then evict down to the size limit
        (items of the batch may be evicted too, as in the seed). Items larger than the
        size limit are not stored (older values under their keys are removed)."""
        ptr = self._handle()
        entries = []
        too_large = []
        for key, item in items.items():
            kb = key_bytes(key)
            value = _value_bytes(item)
            if len(value) > self.size_limit:
                too_large.append(kb)
                continue
            exp = item.get("expiration")
            ms = EXPIRATION_DEFAULT if exp is None else expiration_ms(exp)
            entries.append((kb, value, ms))
        for kb in too_large:
            self._delete(ptr, kb)
        if not entries:
            return
        arr = (_ffi.Entry * len(entries))()
        for slot, (kb, value, ms) in zip(arr, entries, strict=True):
            slot.key = kb
            slot.key_len = len(kb)
            slot.value = value
            slot.value_len = len(value)
            slot.expiration_ms = ms
        err = c_void_p()
        rc = lib.backlite_storage_set_many(ptr, arr, len(entries), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)

    def get_keys(self, check: Collection[Key] | None = None) -> builtins.set[Key]:
        """The live keys among ``check``, or all live keys when None (as str, or
        bytes when they are not UTF-8). Checking is not an access: it changes no
        eviction order."""
        ptr = self._handle()
        if check is None:
            return {_decode_key(k) for k in self._raw_keys(ptr)}
        out: builtins.set[Key] = set()
        for k in check:
            kb = key_bytes(k)
            err = c_void_p()
            rc = lib.backlite_storage_contains(ptr, kb, len(kb), byref(err))
            if rc == OK:
                out.add(k)
            elif rc == NOT_FOUND:
                lib.backlite_error_free(err)
            else:
                raise _ffi.take_error(rc, err)
        return out

    def _raw_keys(self, ptr: int) -> list[bytes]:
        ticket = next(_tickets)
        found: list = []
        _visits[ticket] = found
        err = c_void_p()
        try:
            rc = lib.backlite_storage_keys(ptr, _visit_key, ticket, byref(err))
        finally:
            del _visits[ticket]
        if found and isinstance(found[-1], BaseException):
            raise found[-1]
        if rc != OK:
            raise _ffi.take_error(rc, err)
        return found

    # -- beyond the seed ------------------------------------------------------------

    def __contains__(self, key: Key) -> bool:
        """Whether ``key`` has a live item (not an access)."""
        kb = key_bytes(key)
        err = c_void_p()
        rc = lib.backlite_storage_contains(self._handle(), kb, len(kb), byref(err))
        if rc == OK:
            return True
        if rc == NOT_FOUND:
            lib.backlite_error_free(err)
            return False
        raise _ffi.take_error(rc, err)

    def delete(self, key: Key) -> bool:
        """Remove the item under ``key``; whether there was a live one."""
        return self._delete(self._handle(), key_bytes(key))

    def _delete(self, ptr: int, kb: bytes) -> bool:
        err = c_void_p()
        rc = lib.backlite_storage_delete(ptr, kb, len(kb), byref(err))
        if rc == OK:
            return True
        if rc == NOT_FOUND:
            lib.backlite_error_free(err)
            return False
        raise _ffi.take_error(rc, err)

    def clear(self) -> None:
        """Remove every item."""
        err = c_void_p()
        rc = lib.backlite_storage_clear(self._handle(), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)

    def stats(self) -> Stats:
        """The file's counters and this handle's hits, misses, evictions, expirations."""
        out = _ffi.CStats()
        err = c_void_p()
        rc = lib.backlite_storage_stats(self._handle(), byref(out), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)
        return Stats(
            count=out.count,
            total_size=out.total_size,
            max_size=out.max_size,
            hits=out.hits,
            misses=out.misses,
            evictions=out.evictions,
            expirations=out.expirations,
        )

    def remote_stats(self) -> RemoteStats:
        """This handle's remote tier activity (all zero without a remote)."""
        out = _ffi.CRemoteStats()
        err = c_void_p()
        rc = lib.backlite_storage_remote_stats(self._handle(), byref(out), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)
        return RemoteStats(
            hits=out.hits,
            misses=out.misses,
            writes=out.writes,
            errors=out.errors,
            skipped=out.skipped,
            connected=bool(out.connected),
        )

    def check(self, repair: bool = False) -> CheckReport:
        """Verify the whole file (SQLite's integrity check, every value's checksum, the
        counters); with ``repair``, also remove what is damaged. Reads every entry."""
        out = _ffi.CCheckReport()
        err = c_void_p()
        rc = lib.backlite_storage_check(self._handle(), 1 if repair else 0, byref(out), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)
        return CheckReport(
            healthy=bool(out.healthy),
            integrity_ok=bool(out.integrity_ok),
            repaired=bool(out.repaired),
            entries=out.entries,
            damaged=out.damaged,
            orphan_values=out.orphan_values,
            recorded_count=out.recorded_count,
            recorded_total_size=out.recorded_total_size,
            actual_count=out.actual_count,
            actual_total_size=out.actual_total_size,
        )

    def vacuum(self) -> None:
        """Give the space of deleted entries back to the file system and truncate the
        write-ahead log (BusyError if other connections kept the log from truncating)."""
        err = c_void_p()
        rc = lib.backlite_storage_vacuum(self._handle(), byref(err))
        if rc != OK:
            raise _ffi.take_error(rc, err)

    def close(self) -> None:
        """Close the handle (idempotent). It must not run while another thread is
        inside a call on this storage; later calls raise ValueError."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
            self._closed = True
        _live.discard(self)
        if ptr is not None:
            lib.backlite_storage_free(ptr)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        ptr = getattr(self, "_ptr", None)
        if ptr is not None and not getattr(self, "_closed", True):
            self._ptr = None
            try:
                lib.backlite_storage_free(ptr)
            except Exception:  # noqa: BLE001 - interpreter shutdown: modules torn down
                pass

    def __reduce__(self):
        """Pickled as its location and options: another process (multiprocessing)
        opens its own handle on the same file."""
        if self.location == ":memory:":
            raise TypeError("an in-memory Storage cannot be sent to another process")
        return (
            _reopen,
            (self.location, self.size_limit, self.eviction_policy, self.default_expiration,
             self._busy_timeout),
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size_limit={self.size_limit}"
        return f"Storage({self.location!r}, {state}, eviction_policy={self.eviction_policy!r})"


def _reopen(
    location: str,
    size_limit: int,
    eviction_policy: EvictionPolicy,
    default_expiration: timedelta | None,
    busy_timeout: timedelta | None,
) -> Storage:
    return Storage(
        location,
        size_limit=size_limit,
        eviction_policy=eviction_policy,
        default_expiration=default_expiration,
        busy_timeout=busy_timeout,
        mkdir=False,
    )
