"""BackLite: a file-based cache backed by SQLite, over the Rust libbacklite (C ABI).

    from backlite import Storage, cached

    storage = Storage("cache.db")

    @cached(storage=storage)
    def expensive_function(x, y):
        return x + y
"""

from __future__ import annotations

__version__ = "0.1.0"

from backlite import _ffi  # noqa: E402 - loads the library

if _ffi.version() != __version__:
    raise ImportError(
        f"backlite {__version__} found libbacklite {_ffi.version()} at {_ffi.LIB_PATH}: "
        "the library and the Python package must be the same version. Reinstall the "
        "package (pip install ./bindings/python) so it ships the matching library."
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
from backlite.storage import VERSION_TAG, Storage  # noqa: E402
from backlite.types import (  # noqa: E402
    EVICTION_POLICIES,
    CacheItem,
    CheckReport,
    EvictionPolicy,
    ParamHashFunc,
    REMOTE_MODES,
    RemoteStats,
    Stats,
)


def library_version() -> str:
    """The version of the loaded libbacklite (``backlite_version()``)."""
    return _ffi.version()


__all__ = (
    "EVICTION_POLICIES",
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
    "NotACacheError",
    "NotFoundError",
    "NullParameterError",
    "PanicError",
    "ParamHashFunc",
    "Stats",
    "Storage",
    "StorageIOError",
    "TooLargeError",
    "__version__",
    "async_cached",
    "cached",
    "library_version",
)
