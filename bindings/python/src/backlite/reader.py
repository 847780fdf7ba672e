"""``ValueReader``: a stored value as a read-only binary file, read when the caller is
ready (``Storage.reader``), in bounded memory whatever its size.

It is an ``io.RawIOBase``: ``read(n)``, ``readinto``, ``readall``, iteration and
``with`` work as on a file opened ``"rb", buffering=0``; ``shutil.copyfileobj``, a tar
writer or an HTTP response takes it as it is (wrap it in ``io.BufferedReader`` for
small reads or ``readline``). Each read releases the GIL while it reads the value's
file or the database.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from backlite import _native


class ValueReader(io.RawIOBase):
    """A reader of one value, from ``Storage.reader``. Not seekable.

    The value is the one found when the reader was opened: a set or delete of its key
    meanwhile does not change what it reads. A value larger than 256 KiB kept in the
    database file (a raised ``file_threshold``, or ``None``) holds a read snapshot until
    the reader is closed: writes go on, but the file's WAL is not checkpointed past it,
    so close it (``with``) when done.

    A value that proves damaged at its end (its CRC-32 does not match) raises
    ``NotFoundError`` from the read that reaches the end, never a clean end of file:
    drop what was read; its entry is removed, as a get removes a damaged one. One
    thread at a time: a read while another thread reads raises RuntimeError.
    """

    def __init__(self, native: _native.ValueReader) -> None:
        super().__init__()
        self._native = native

    @property
    def size(self) -> int:
        """The value's length in bytes."""
        return self._native.size

    def __len__(self) -> int:
        return self._native.size

    @property
    def remaining(self) -> int:
        """The bytes not read yet."""
        return self._native.remaining

    @property
    def expires_in(self) -> timedelta | None:
        """The value's time left when the reader was opened; None: it never expires."""
        return self._native.expires_in

    def readable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        """Refused, as by a file opened ``"rb"``: ``io.UnsupportedOperation``."""
        raise io.UnsupportedOperation("write: a ValueReader is read-only")

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` is None or negative);
        ``b""`` only at the end. Read straight into the returned bytes, with no copy."""
        self._checkClosed()  # type: ignore[attr-defined]
        if size is None or size < 0:
            return self.readall()
        return self._native.read(size)

    def readall(self) -> bytes:
        self._checkClosed()  # type: ignore[attr-defined]
        return self._native.read(self._native.remaining)

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        with memoryview(buffer) as view, view.cast("B") as out:
            if out.readonly:
                # Refused before the read, as io.FileIO does: the bytes read would be lost.
                raise TypeError(
                    "readinto() argument must be read-write bytes-like object, "
                    f"not {type(buffer).__name__}"
                )
            data = self._native.read(len(out))
            out[: len(data)] = data
            return len(data)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Refused, as by a file opened "rb": copy.copy made a second reader over this
        # one's native reader, each moving the other on, and closing one broke both.
        raise TypeError(
            f"cannot pickle or copy {type(self).__name__!r} object: open another reader "
            "with Storage.reader"
        )

    def close(self) -> None:
        """Gives back what the reader holds (its file, or its connection and snapshot).
        Closing again does nothing."""
        if not self.closed:
            self._native.close()
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._native.remaining} bytes left"
        return f"<backlite.ValueReader of {self._native.size} bytes, {state}>"
