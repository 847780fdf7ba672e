"""BackLite: a file-based cache backed by SQLite, over BackLite's Rust core (a native
extension module, ``backlite._native``).

    from backlite import Storage, cached

    storage = Storage("cache.db")

    @cached(storage=storage)
    def expensive_function(x, y):
        return x + y
"""

from __future__ import annotations

__version__ = "0.1.0"

from backlite import _native  # noqa: E402

if _native.__version__ != __version__:
    raise ImportError(
        f"backlite {__version__} found its native module at version {_native.__version__} "
        f"({_native.__file__}): the two must be the same version. Reinstall the package "
        "(pip install ./bindings/python, or the wheel) so it ships the matching module."
    )

from backlite.decorators import async_cached, cached  # noqa: E402
from backlite.errors import (  # noqa: E402
    BackLiteError,
    BusyError,
    CallbackFailedError,
    CorruptError,
    IncompatibleError,
    InternalError,
    InvalidArgumentError,
    LeaseHeldError,
    LeaseLostError,
    NotACacheError,
    NotFoundError,
    NullParameterError,
    PanicError,
    StorageIOError,
    TooLargeError,
)
from backlite.reader import ValueReader  # noqa: E402
from backlite.storage import FILE_THRESHOLD_DEFAULT, VERSION_TAG, Storage  # noqa: E402
from backlite.types import (  # noqa: E402
    EVICTION_POLICIES,
    CacheItem,
    CheckReport,
    EvictionPolicy,
    LifetimeStats,
    ParamHashFunc,
    REMOTE_MODES,
    RemoteStats,
    Stats,
)


def library_version() -> str:
    """The version of BackLite's Rust core in the loaded native module."""
    return _native.__version__


__all__ = (
    "EVICTION_POLICIES",
    "FILE_THRESHOLD_DEFAULT",
    "REMOTE_MODES",
    "RemoteStats",
    "VERSION_TAG",
    "BackLiteError",
    "BusyError",
    "CacheItem",
    "CallbackFailedError",
    "CheckReport",
    "CorruptError",
    "EvictionPolicy",
    "IncompatibleError",
    "InternalError",
    "InvalidArgumentError",
    "LeaseHeldError",
    "LeaseLostError",
    "LifetimeStats",
    "NotACacheError",
    "NotFoundError",
    "NullParameterError",
    "PanicError",
    "ParamHashFunc",
    "Stats",
    "Storage",
    "StorageIOError",
    "TooLargeError",
    "ValueReader",
    "__version__",
    "async_cached",
    "cached",
    "library_version",
)
