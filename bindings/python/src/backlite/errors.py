"""Exceptions carrying the C library's result code (``backlite_result``)."""

from __future__ import annotations


class BackLiteError(Exception):
    """A failed libbacklite call. ``code`` is the C result code (``BACKLITE_RESULT_*``),
    ``message`` the library's message."""

    code: int = -1

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (backlite result {self.code})"

    def __reduce__(self):  # picklable across processes despite the 2-argument __init__
        return (type(self), (self.code, self.message))


class NotFoundError(BackLiteError, KeyError):
    """BACKLITE_RESULT_NOT_FOUND (1): no live entry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return BackLiteError.__str__(self)


class NullParameterError(BackLiteError):
    """BACKLITE_RESULT_NULL_PARAMETER (2): a bug in this binding."""


class InvalidArgumentError(BackLiteError, ValueError):
    """BACKLITE_RESULT_INVALID_ARGUMENT (3): bad value, path or duration."""


class StorageIOError(BackLiteError):
    """BACKLITE_RESULT_IO (4): cannot open, create, read or write the file."""


class NotACacheError(BackLiteError):
    """BACKLITE_RESULT_NOT_A_CACHE (5): the file is not a BackLite cache (left untouched)."""


class CorruptError(BackLiteError):
    """BACKLITE_RESULT_CORRUPT (6): SQLite reports the file damaged."""


class BusyError(BackLiteError):
    """BACKLITE_RESULT_BUSY (7): a lock was not obtained within the busy timeout."""


class TooLargeError(BackLiteError):
    """BACKLITE_RESULT_TOO_LARGE (8): the value is larger than the size limit."""


class CallbackFailedError(BackLiteError):
    """BACKLITE_RESULT_CALLBACK_FAILED (9): a callback reported failure."""


class IncompatibleError(BackLiteError):
    """BACKLITE_RESULT_INCOMPATIBLE (10): the file was written by a newer BackLite."""


class PanicError(BackLiteError):
    """BACKLITE_RESULT_PANIC (11): an internal bug of the library, caught at its boundary."""


class InternalError(BackLiteError):
    """BACKLITE_RESULT_INTERNAL (12): any other SQLite or system error."""


class LeaseLostError(BackLiteError):
    """BACKLITE_RESULT_LEASE_LOST: a compute lease expired before it was fulfilled."""


class LeaseHeldError(BackLiteError):
    """BACKLITE_RESULT_LEASE_HELD (14): another live owner holds the key's lease (it is
    computing the value). ``time_left`` is its lease's time left in seconds (it renews
    the lease while it computes), or None if the library did not say."""

    time_left: float | None = None


_BY_CODE: dict[int, type[BackLiteError]] = {
    1: NotFoundError,
    2: NullParameterError,
    3: InvalidArgumentError,
    4: StorageIOError,
    5: NotACacheError,
    6: CorruptError,
    7: BusyError,
    8: TooLargeError,
    9: CallbackFailedError,
    10: IncompatibleError,
    11: PanicError,
    12: InternalError,
    13: LeaseLostError,
    14: LeaseHeldError,
}


def error_from_code(code: int, message: str, lease_time_left_ms: int = -1) -> BackLiteError:
    error = _BY_CODE.get(code, BackLiteError)(code, message)
    if isinstance(error, LeaseHeldError) and lease_time_left_ms >= 0:
        error.time_left = lease_time_left_ms / 1000
    return error
