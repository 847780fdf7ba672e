"""``Storage``: the seed's key-value API over a handle of the native module.

The hot calls (``get_one``/``get``, ``get_value``, ``set_one``/``set``, ``set_value``,
``in``, ``delete``) are methods of ``_native.Storage`` itself: a call runs no Python
code. This subclass adds what is Python by nature: the seed's argument checks, the
calls built from others, pickling, and reopening after fork().
"""

from __future__ import annotations

import atexit
import builtins
import multiprocessing.util
import os
import sys
import weakref
from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Union

from backlite import _native
from backlite._native import (
    EXPIRATION_DEFAULT,
    FILE_THRESHOLD_DEFAULT,
    MAX_VALUE_SIZE,
    expiration_ms,
)
from backlite.reader import ValueReader
from backlite.types import (
    EVICTION_POLICIES,
    REMOTE_MODES,
    CacheItem,
    CheckReport,
    EvictionPolicy,
    LifetimeStats,
    RemoteStats,
    Stats,
)

Key = Union[str, bytes]

VERSION_TAG = f"python-{sys.version_info.major}.{sys.version_info.minor}"
"""The version tag: a file last opened under another Python major.minor is emptied
on open (its pickles may not load), not on a patch release."""

_U32_MAX = 2**32 - 1


def key_bytes(key: Key) -> bytes:
    """A string key is its UTF-8 bytes; bytes keys are taken as they are. A subclass of
    str or bytes by its own text or bytes, as the native calls (set, get) read it, not by
    its str() or __bytes__: a str mixin enum's str() is "Kind.RED", not "red"."""
    if isinstance(key, str):
        return str.encode(key)
    if isinstance(key, bytes):
        return bytes.__bytes__(key)
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"a cache key is str or bytes, not {type(key).__name__}")


def _decode_key(raw: bytes) -> Key:
    """Keys read back from the file: str when they are UTF-8, else bytes."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _value_bytes(item: Any) -> bytes:
    try:
        value = item["value"]
    except (TypeError, KeyError):
        raise TypeError('a cache item is a dict {"value": bytes, "expiration": timedelta}') from None
    if type(value) is bytes:
        return value
    if isinstance(value, bytes):  # its bytes, as set stores them, not its __bytes__
        return bytes.__bytes__(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f'a cache item\'s "value" is bytes, not {type(value).__name__}')


# Storages open in this process, reopened lazily in a forked child (a SQLite handle
# must not be used across fork()).
_live: weakref.WeakSet[Storage] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _native._after_fork_in_child()
    for storage in list(_live):
        storage._forget_after_fork()


if hasattr(os, "register_at_fork"):
    # A fork waits for the library's hit writer to be between two writes, so that the
    # child inherits no lock it held (its writes would all be BUSY).
    os.register_at_fork(
        before=_native._before_fork,
        after_in_parent=_native._after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )

# At exit, the hits of storages never closed nor freed (one a daemon thread holds, say)
# are written, or another process's eviction would take what this one read last.
atexit.register(_native._write_waiting_at_exit)


class _ExitToken:
    """What multiprocessing's after-fork registry holds (weakly) for this module."""


_exit_token = _ExitToken()


def _write_at_multiprocessing_exit(_token: _ExitToken) -> None:
    # A multiprocessing child ends with os._exit, which runs no atexit handler; the
    # child's own finalizers run once its target has returned (it registers them anew
    # after the fork, hence this). The lowest priority: after every other finalizer.
    multiprocessing.util.Finalize(None, _native._write_waiting_at_exit, exitpriority=-(2**31))


multiprocessing.util.register_after_fork(_exit_token, _write_at_multiprocessing_exit)


class Storage(_native.Storage):
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
        file_threshold: int | None = FILE_THRESHOLD_DEFAULT,
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
            file_threshold: values of at least this many bytes are kept in files of
                their own in the folder ``<location>.values`` beside the cache file,
                where large values read and write at the speed of files; ``None`` keeps
                every value in the database file. The default is
                ``FILE_THRESHOLD_DEFAULT``.
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
        if remote_timeout is not None and not isinstance(remote_timeout, timedelta):
            raise TypeError(
                f"remote_timeout is a datetime.timedelta or None, not {type(remote_timeout).__name__}"
            )
        if remote_timeout is not None and remote_timeout <= timedelta(0):
            raise ValueError("remote_timeout must be a positive datetime.timedelta")
        for name, value in (("busy_timeout", busy_timeout), ("lease_length", lease_length)):
            # Named here: the conversion's own TypeError spoke of an "expiration".
            if value is not None and not isinstance(value, timedelta):
                raise TypeError(
                    f"{name} is a datetime.timedelta or None, not {type(value).__name__}"
                )
        # Refused, as a negative lease_length is, rather than taken as 0 (no wait).
        if isinstance(busy_timeout, timedelta) and busy_timeout < timedelta(0):
            raise ValueError("busy_timeout must be a datetime.timedelta of zero or more")
        self._remote = (remote, remote_namespace, remote_timeout, remote_mode)
        if size_limit is not None and max_size is not None and size_limit != max_size:
            raise TypeError("size_limit and max_size are the same option: give one")
        limit = size_limit if size_limit is not None else max_size
        if limit is None:
            limit = 1024**3
        # At most 2**63 - 1, the core's bound: a larger int raised OverflowError.
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit < 2**63:
            raise ValueError(
                f"size_limit must be a positive int below 2**63, got {limit!r}"
            )
        if eviction_policy not in EVICTION_POLICIES:
            raise ValueError(
                f"Invalid eviction policy: {eviction_policy!r} "
                f"(one of {', '.join(sorted(EVICTION_POLICIES))})"
            )
        if file_threshold is not None and (
            isinstance(file_threshold, bool)
            or not isinstance(file_threshold, int)
            or not 0 < file_threshold < 2**63
        ):
            raise ValueError(
                f"file_threshold must be a positive int or None, got {file_threshold!r}"
            )
        if default_expiration is not None and not isinstance(default_expiration, timedelta):
            raise TypeError("default_expiration is a datetime.timedelta or None")
        location = os.fspath(location)
        if isinstance(location, bytes):
            location = os.fsdecode(location)
        self.location: str = location
        # The file, named from the folder it is in now: a forked child opens it again
        # by this name, and another process by its pickle, after this process may have
        # changed folder (a daemon's chdir("/")). Not normalised: "link/.." is the
        # link target's parent, as the core and the file system take it.
        self._file: str = (
            location if location in ("", ":memory:") else os.path.join(os.getcwd(), location)
        )
        self.size_limit: int = limit
        self.eviction_policy: EvictionPolicy = eviction_policy
        self.default_expiration: timedelta | None = default_expiration
        self._busy_timeout = busy_timeout
        self._lease_length = lease_length
        self.file_threshold: int | None = file_threshold
        made = _missing_parents(location) if mkdir and location != ":memory:" else []
        try:
            if made:
                made[-1].mkdir(parents=True, exist_ok=True)
            self._open()
        except BaseException:
            # An open that fails (a bad option, say) leaves nothing behind, not even the
            # folders it made: the innermost first, and only while empty.
            for folder in reversed(made):
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise
        _live.add(self)

    @property
    def max_size(self) -> int:
        """The size limit (the README's name for ``size_limit``)."""
        return self.size_limit

    def _open(self) -> None:
        def ms(d: timedelta | None, low: int, high: int) -> int | None:
            return None if d is None else max(low, min(high, expiration_ms(d)))

        remote, namespace, timeout, mode = self._remote
        self._open_file(
            self._file,
            self.size_limit,
            self.eviction_policy,
            None if self.default_expiration is None else expiration_ms(self.default_expiration),
            ms(self._busy_timeout, 0, _U32_MAX),
            None if self._lease_length is None else expiration_ms(self._lease_length),
            self.file_threshold,
            VERSION_TAG,
            remote,
            namespace,
            ms(timeout, 1, _U32_MAX),
            REMOTE_MODES[mode],
        )

    # get_one/get, get_value, get_to, set_one/set, set_value, delete, clear, vacuum,
    # zero_stats, close, closed and `in` are the native class's.

    def reader(self, key: Key) -> ValueReader | None:
        """The value under ``key`` as a read-only binary file (``io.RawIOBase``), read
        when you are ready and in bounded memory, or None on a miss. A hit or miss as
        for ``get``, counted now. Close it when done (``with``)::

            with storage.reader("model") as r, open("model.bin", "wb") as f:
                shutil.copyfileobj(r, f)

        See ``ValueReader`` for what it holds while open and for a damaged value.
        """
        native = self._open_reader(key)
        return None if native is None else ValueReader(native)

    def get_many(self, keys: Collection[Key] | None = None) -> dict[Key, CacheItem]:
        """The live items among ``keys`` (all of them when None), by key. Keys read
        from the file come back as str, or as bytes when they are not UTF-8."""
        self._check_open()
        if keys is None:
            pairs: Iterable[tuple[Key, Key]] = ((_decode_key(k), k) for k in self._raw_keys())
        else:
            pairs = ((k, k) for k in keys)
        out: dict[Key, CacheItem] = {}
        for k, asked in pairs:
            item = self.get_one(asked)
            if item is not None:
                out[k] = item
        return out

    def set_many(self, items: Mapping[Key, CacheItem]) -> None:
        """Store all ``items`` in one transaction, then evict down to the size limit
        (items of the batch may be evicted too, as in the seed). Items larger than the
        size limit (without a file threshold, also those over 999,999,000 bytes) are not
        stored, as by ``set`` (older values under their keys are removed, in the same
        transaction)."""
        # By the key's bytes, the last item of each: "k" and b"k" are two keys of
        # ``items`` and one of the cache, and the later one wins, as with set in turn
        # (a too-large one too: deleted after the earlier was set, it kept that value).
        # The longest value the core stores, as set sees it: without a file threshold,
        # no more than SQLite holds as one value. The core refuses a batch with a
        # longer one whole (TooLargeError, nothing stored); set skips it.
        self._check_open()
        longest = self.size_limit
        if self.file_threshold is None:
            longest = min(longest, MAX_VALUE_SIZE)
        last: dict[bytes, tuple[bytes, int]] = {}
        for key, item in items.items():
            kb = key_bytes(key)
            value = _value_bytes(item)
            last.pop(kb, None)
            if len(value) > longest:
                # Already expired: it removes the older value in the batch's own
                # transaction (deleted apart, a crash or another reader between the
                # two saw half a batch).
                last[kb] = (b"", 0)
                continue
            exp = item.get("expiration")
            ms = EXPIRATION_DEFAULT if exp is None else expiration_ms(exp)
            last[kb] = (value, ms)
        if last:
            self._set_many([(kb, *entry) for kb, entry in last.items()])

    def get_keys(self, check: Collection[Key] | None = None) -> builtins.set[Key]:
        """The live keys among ``check``, or all live keys when None (as str, or
        bytes when they are not UTF-8). Checking is not an access: it changes no
        eviction order."""
        self._check_open()
        if check is None:
            return {_decode_key(k) for k in self._raw_keys()}
        return {k for k in check if k in self}

    def stats(self) -> Stats:
        """The file's counters and this handle's hits, misses, evictions, expirations."""
        return Stats(*self._stats())

    def lifetime_stats(self) -> LifetimeStats:
        """The file's lifetime counters, by every handle of every process since the file
        was created or last zeroed. Hits and misses wait in memory and reach the file
        with a process's next write: this process's are always included, another's once
        it has written (at the latest when its last handle on the file closes)."""
        return LifetimeStats(*self._lifetime_stats())

    def remote_stats(self) -> RemoteStats:
        """This handle's remote tier activity (all zero without a remote)."""
        return RemoteStats(*self._remote_stats())

    def check(self, repair: bool = False) -> CheckReport:
        """Verify the whole file (SQLite's integrity check, every value's checksum, the
        counters); with ``repair``, also remove what is damaged. Reads every entry."""
        return CheckReport(*self._check(bool(repair)))

    def close(self) -> None:
        """Close the handle (idempotent); later calls raise ValueError. Calls running
        on other threads meanwhile finish first."""
        super().close()
        _live.discard(self)

    def _check_open(self) -> None:
        # For the calls that may make no native call (nothing asked, nothing to set):
        # they returned as if open, so a use after close went unseen.
        if self.closed:
            raise ValueError("operation on a closed Storage")

    def __enter__(self) -> Storage:
        self._check_open()  # as a closed file's `with` does
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self):
        """Pickled as its location and options: another process (multiprocessing)
        opens its own handle on the same file."""
        if self.location == ":memory:":
            raise TypeError("an in-memory Storage cannot be sent to another process")
        options = (self._file, self.size_limit, self.eviction_policy, self.default_expiration,
                   self._busy_timeout, self.file_threshold, self._lease_length, *self._remote)
        if type(self) is Storage:
            return _reopen, options
        # A subclass comes back as itself, with its attributes (its __getstate__), as
        # pickle makes any object: without calling its __init__, whose parameters may
        # be its own. Before, it came back a plain Storage.
        return _reopen_as, (type(self), *options), self.__getstate__()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size_limit={self.size_limit}"
        return f"Storage({self.location!r}, {state}, eviction_policy={self.eviction_policy!r})"


def _missing_parents(location: str) -> list[Path]:
    """The folders above ``location`` that do not exist, outermost first."""
    missing = []
    parent = Path(location).parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing[::-1]


def _reopen(*options: Any) -> Storage:
    return _reopen_as(Storage, *options)


def _reopen_as(
    cls: type[Storage],
    location: str,
    size_limit: int,
    eviction_policy: EvictionPolicy,
    default_expiration: timedelta | None,
    busy_timeout: timedelta | None,
    file_threshold: int | None = FILE_THRESHOLD_DEFAULT,
    lease_length: timedelta | None = None,
    remote: str | None = None,
    remote_namespace: str | None = None,
    remote_timeout: timedelta | None = None,
    remote_mode: str = "read-write",
) -> Storage:
    # New parameters go last, with defaults: pickles made by an older version still load.
    storage = cls.__new__(cls)
    Storage.__init__(
        storage,
        location,
        size_limit=size_limit,
        eviction_policy=eviction_policy,
        default_expiration=default_expiration,
        busy_timeout=busy_timeout,
        file_threshold=file_threshold,
        lease_length=lease_length,
        remote=remote,
        remote_namespace=remote_namespace,
        remote_timeout=remote_timeout,
        remote_mode=remote_mode,
        mkdir=False,
    )
    return storage
