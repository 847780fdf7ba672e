"""ctypes declarations of the C API in include/backlite.h, and the library loader.

Only this module touches ctypes types; storage.py and decorators.py call through it.
ctypes releases the GIL for the duration of every call into the library, so threads
using one Storage run in parallel inside the library.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from backlite.errors import error_from_code

LIB_NAME = "libbacklite.dylib" if sys.platform == "darwin" else "libbacklite.so"
LIB_PATH = Path(__file__).resolve().parent / "_native" / LIB_NAME

# Result codes (API.md: fixed values).
OK = 0
NOT_FOUND = 1
BUSY = 7
TOO_LARGE = 8
CALLBACK_FAILED = 9
LEASE_LOST = 13
LEASE_HELD = 14

EXPIRATION_DEFAULT = -1
EXPIRATION_NEVER = -2


class Buf(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t)]


class Entry(Structure):
    _fields_ = [
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("value", c_char_p),
        ("value_len", c_size_t),
        ("expiration_ms", c_int64),
    ]


class CStats(Structure):
    _fields_ = [
        ("count", c_uint64),
        ("total_size", c_uint64),
        ("max_size", c_uint64),
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("evictions", c_uint64),
        ("expirations", c_uint64),
    ]


class CRemoteStats(Structure):
    _fields_ = [
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("writes", c_uint64),
        ("errors", c_uint64),
        ("skipped", c_uint64),
        ("connected", c_int32),
    ]


class CCheckReport(Structure):
    _fields_ = [
        ("healthy", c_int32),
        ("integrity_ok", c_int32),
        ("repaired", c_int32),
        ("entries", c_uint64),
        ("damaged", c_uint64),
        ("orphan_values", c_uint64),
        ("recorded_count", c_uint64),
        ("recorded_total_size", c_uint64),
        ("actual_count", c_uint64),
        ("actual_total_size", c_uint64),
    ]


COMPUTE_FN = CFUNCTYPE(c_int32, c_void_p, c_void_p)
KEY_VISITOR = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_size_t)
CHUNK_VISITOR = CFUNCTYPE(c_int32, c_void_p, c_void_p, c_size_t)
LOCK_FN = CFUNCTYPE(c_int32, c_void_p)
UNLOCK_FN = CFUNCTYPE(None, c_void_p)


class Barrier(Structure):
    _fields_ = [("user_data", c_void_p), ("lock", LOCK_FN), ("unlock", UNLOCK_FN)]


def _load() -> ctypes.CDLL:
    if not LIB_PATH.is_file():
        raise ImportError(
            f"backlite: the native library is missing ({LIB_PATH}). The package must be "
            "installed with pip (pip install ./bindings/python), which builds it."
        )
    try:
        return ctypes.CDLL(str(LIB_PATH))
    except OSError as e:
        raise ImportError(f"backlite: cannot load {LIB_PATH}: {e}") from e


lib = _load()

_P = c_void_p  # opaque handles: storage, options, error, sink
_PP = POINTER(c_void_p)  # backlite_error **, backlite_storage **


def _decl(name: str, restype, *argtypes) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_decl("backlite_version", c_char_p)
_decl("backlite_version_number", c_uint32)
_decl("backlite_result_str", c_char_p, c_int32)
_decl("backlite_error_result", c_int32, _P)
_decl("backlite_error_message", c_char_p, _P)
_decl("backlite_error_free", None, _P)
_decl("backlite_options_new", _P)
_decl("backlite_options_free", None, _P)
_decl("backlite_options_set_max_size", c_int32, _P, c_uint64)
_decl("backlite_options_set_eviction_policy_name", c_int32, _P, c_char_p)
_decl("backlite_options_set_default_expiration_ms", c_int32, _P, c_int64)
_decl("backlite_options_set_busy_timeout_ms", c_int32, _P, c_uint32)
_decl("backlite_options_set_lease_ms", c_int32, _P, c_int64)
_decl("backlite_options_set_version_tag", c_int32, _P, c_char_p)
_decl("backlite_options_set_remote", c_int32, _P, c_char_p)
_decl("backlite_options_set_remote_namespace", c_int32, _P, c_char_p)
_decl("backlite_options_set_remote_timeout_ms", c_int32, _P, c_uint32)
_decl("backlite_options_set_remote_mode", c_int32, _P, c_int32)
_decl("backlite_storage_remote_stats", c_int32, _P, POINTER(CRemoteStats), _PP)
_decl("backlite_storage_open", c_int32, c_char_p, _P, _PP, _PP)
_decl("backlite_storage_free", None, _P)
_decl("backlite_storage_get", c_int32, _P, c_char_p, c_size_t, POINTER(Buf), POINTER(c_int64), _PP)
_decl("backlite_storage_set", c_int32, _P, c_char_p, c_size_t, c_char_p, c_size_t, c_int64, _PP)
_decl("backlite_storage_set_many", c_int32, _P, POINTER(Entry), c_size_t, _PP)
_decl("backlite_storage_delete", c_int32, _P, c_char_p, c_size_t, _PP)
_decl("backlite_storage_contains", c_int32, _P, c_char_p, c_size_t, _PP)
_decl("backlite_storage_keys", c_int32, _P, KEY_VISITOR, c_void_p, _PP)
_decl(
    "backlite_storage_get_chunks", c_int32, _P, c_char_p, c_size_t, CHUNK_VISITOR, c_void_p,
    POINTER(c_int64), _PP,
)
_decl("backlite_storage_clear", c_int32, _P, _PP)
_decl("backlite_storage_stats", c_int32, _P, POINTER(CStats), _PP)
_decl("backlite_storage_check", c_int32, _P, c_int32, POINTER(CCheckReport), _PP)
_decl("backlite_storage_vacuum", c_int32, _P, _PP)
_decl("backlite_buf_free", None, POINTER(Buf))
_decl("backlite_sink_write", c_int32, _P, c_char_p, c_size_t)
_decl(
    "backlite_cached_call",
    c_int32,
    _P, c_char_p, c_size_t, COMPUTE_FN, c_void_p, POINTER(Barrier), c_int64, POINTER(Buf), _PP,
)

# Leases (stampede protection): one caller computes a key, across processes.
_decl("backlite_lease_try_acquire", c_int32, _P, c_char_p, c_size_t, c_int64, POINTER(Buf), _PP, _PP)
_decl("backlite_lease_extend", c_int32, _P, c_int64, _PP)
_decl("backlite_lease_fulfill", c_int32, _P, c_char_p, c_size_t, c_int64, _PP)
_decl("backlite_lease_abandon", None, _P)
_decl("backlite_lease_step", c_int32, _P, c_char_p, c_size_t, c_uint32, POINTER(Buf), _PP, _PP)
_decl("backlite_error_lease_time_left_ms", c_int64, _P)
_decl("backlite_error_retry_in_ms", c_int64, _P)
_decl(
    "backlite_cached_call_exclusive",
    c_int32,
    _P, c_char_p, c_size_t, COMPUTE_FN, c_void_p, c_int64, c_int64, POINTER(Buf), _PP,
)


def version() -> str:
    return lib.backlite_version().decode()


def result_str(code: int) -> str:
    return (lib.backlite_result_str(code) or b"").decode("utf-8", "replace")


def take_error(code: int, err: c_void_p) -> Exception:
    """The exception for a failed call; frees the C error object."""
    time_left_ms = -1
    if err.value:
        message = (lib.backlite_error_message(err) or b"").decode("utf-8", "replace")
        time_left_ms = lib.backlite_error_lease_time_left_ms(err)
        lib.backlite_error_free(err)
        err.value = None
    else:
        message = result_str(code)
    return error_from_code(code, message, time_left_ms)


def take_buf(buf: Buf) -> bytes:
    """The bytes of a library buffer; frees it."""
    try:
        return ctypes.string_at(buf.data, buf.len)
    finally:
        lib.backlite_buf_free(ctypes.byref(buf))
