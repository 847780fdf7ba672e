"""``Storage.reader``: a value as a read-only binary file (issue 16, item 3). Every place
a value lives reads back whole through ``read``, ``readinto``, ``shutil.copyfileobj``
and ``io.BufferedReader``; a miss is None; a damaged value raises ``NotFoundError`` at
its end (never a clean end of file) and its entry goes; a value replaced while a reader
is open reads back as it was; a reader outlives its Storage."""

from __future__ import annotations

import io
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

import backlite
from backlite import NotFoundError, Storage, ValueReader

CHUNK = 256 * 1024


def value(n: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed) % 256 for i in range(n))


# (what, file_threshold, length): a row, a blob copied at open, a blob read from a kept
# snapshot, a file of its own.
SHAPES = [
    ("empty", 4096, 0),
    ("in its row", 4096, 100),
    ("a blob copied at open", None, CHUNK),
    ("a blob in a snapshot", None, 3 * CHUNK + 17),
    ("a file", 4096, 3 * CHUNK + 5),
]


# The record (magic, length, CRC-32) that follows a value in its file (v2-*.blv).
RECORD_LEN = 24


def _value_files(location: Path) -> list[Path]:
    return sorted(Path(f"{location}.values").glob("v*.blv"))


@pytest.mark.parametrize("what,threshold,n", SHAPES, ids=[s[0] for s in SHAPES])
def test_every_kind_of_value_reads_back_whole(tmp_path, what, threshold, n):
    v = value(n, 1)
    with Storage(tmp_path / "c.db", file_threshold=threshold) as s:
        s.set_value("k", v, timedelta(hours=1))
        with s.reader("k") as r:
            assert isinstance(r, ValueReader) and isinstance(r, io.RawIOBase)
            assert r.readable() and not r.seekable() and not r.writable()
            assert r.size == len(r) == n
            assert timedelta(minutes=59) < r.expires_in <= timedelta(hours=1)
            assert r.read() == v
            assert r.read(10) == b""
        assert r.closed
        with pytest.raises(ValueError):
            r.read(1)

        with s.reader("k") as r:
            parts = []
            while part := r.read(7000):
                parts.append(part)
            assert b"".join(parts) == v
            assert r.remaining == 0

        with s.reader("k") as r:
            buf = bytearray(5000)
            got = bytearray()
            while m := r.readinto(buf):
                got += buf[:m]
            assert got == v

        out = io.BytesIO()
        with s.reader("k") as r:
            shutil.copyfileobj(r, out)
        assert out.getvalue() == v
        with io.BufferedReader(s.reader("k")) as b:
            assert b.read(3) == v[:3] and b.read() == v[3:]


def test_a_miss_is_none_and_hits_and_misses_count(tmp_path):
    with Storage(tmp_path / "c.db") as s:
        assert s.reader("absent") is None
        s.set_value("k", b"v" * 100)
        s.set_value("gone", b"x", timedelta(0))
        assert s.reader("gone") is None
        with s.reader("k") as r:
            assert r.expires_in is None
        st = s.stats()
        assert (st.hits, st.misses) == (1, 2)
        with pytest.raises(TypeError):
            s.reader(42)


def test_a_flipped_byte_raises_at_the_end_and_the_entry_goes(tmp_path):
    location = tmp_path / "c.db"
    v = value(2 * CHUNK + 100, 3)
    with Storage(location, file_threshold=4096) as s:
        s.set_value("k", v)
        (f,) = _value_files(location)
        data = bytearray(f.read_bytes())
        data[-RECORD_LEN - 1] ^= 1  # the value's last byte
        f.write_bytes(bytes(data))
        r = s.reader("k")
        got = bytearray()
        with pytest.raises(NotFoundError, match="damaged"):
            while part := r.read(10_000):
                got += part
        assert len(got) < len(v), "never the whole of a damaged value"
        with pytest.raises(NotFoundError):
            r.read(1)
        r.close()
        assert "k" not in s
        assert _value_files(location) == []
        # Through copyfileobj: an exception, never a short copy that looks whole.
        s.set_value("k", v)
        (f,) = _value_files(location)
        data = bytearray(f.read_bytes())
        data[-RECORD_LEN - 1] ^= 1
        f.write_bytes(bytes(data))
        with s.reader("k") as r, pytest.raises(NotFoundError):
            shutil.copyfileobj(r, io.BytesIO())


def test_a_damaged_blob_is_a_miss_or_raises_at_its_end(tmp_path):
    for n, streamed in [(CHUNK, False), (3 * CHUNK, True)]:
        location = tmp_path / f"c{n}.db"
        with Storage(location, file_threshold=None) as s:
            s.set_value("k", value(n, 4))
        db = sqlite3.connect(location)
        db.execute("UPDATE blobs SET value = zeroblob(length(value))")
        db.commit()
        db.close()
        with Storage(location, file_threshold=None) as s:
            r = s.reader("k")
            if streamed:
                assert r is not None
                with r, pytest.raises(NotFoundError):
                    r.read()
            else:
                assert r is None, "copied and checked at open"
            assert "k" not in s


@pytest.mark.parametrize("what,threshold,n", SHAPES[1:], ids=[s[0] for s in SHAPES[1:]])
def test_a_value_replaced_while_a_reader_is_open_reads_back_as_it_was(tmp_path, what, threshold, n):
    old, new = value(n, 5), value(n, 6)
    with Storage(tmp_path / "c.db", file_threshold=threshold) as s:
        s.set_value("k", old)
        with s.reader("k") as r:
            s.set_value("k", new)
            s.set_value("other", value(n, 7))
            assert r.read() == old
        assert s.get_value("k") == new


def test_a_reader_outlives_its_storage(tmp_path):
    v = value(3 * CHUNK, 8)
    for threshold in (None, 4096):
        s = Storage(tmp_path / f"c{threshold}.db", file_threshold=threshold)
        s.set_value("k", v)
        r = s.reader("k")
        s.close()
        del s
        assert r.read() == v
        r.close()


def test_closing_twice_does_nothing_and_repr_says_what_is_left(tmp_path):
    with Storage(tmp_path / "c.db") as s:
        s.set_value("k", b"x" * 10)
        r = s.reader("k")
        assert "10 bytes" in repr(r)
        r.close()
        r.close()  # again: nothing
        assert "closed" in repr(r)


def test_reader_is_exported():
    assert backlite.ValueReader is ValueReader
    assert "ValueReader" in backlite.__all__


def test_what_a_read_only_file_refuses_raises_unsupported_operation(tmp_path):
    # As a file opened "rb", buffering=0: io.UnsupportedOperation (an OSError and a
    # ValueError), never NotImplementedError.
    with Storage(tmp_path / "c.db") as s:
        s.set_value("k", b"abc")
        with s.reader("k") as r:
            assert r.readable() and not r.writable() and not r.seekable()
            for refused in (lambda: r.write(b"x"), lambda: r.writelines([b"x"]),
                            lambda: r.seek(0), lambda: r.tell(), lambda: r.truncate(0),
                            lambda: r.fileno()):
                with pytest.raises(io.UnsupportedOperation):
                    refused()
            assert r.read() == b"abc"


@pytest.mark.parametrize(
    "buffer",
    [bytes(4), memoryview(bytes(4)), memoryview(bytearray(4)).toreadonly()],
    ids=["bytes", "memoryview of bytes", "read-only memoryview"],
)
def test_readinto_a_read_only_buffer_raises_and_loses_no_byte(tmp_path, buffer):
    # As io.FileIO and io.BytesIO: TypeError before anything is read, so the next read
    # still starts at the first byte.
    with Storage(tmp_path / "c.db") as s:
        s.set_value("k", b"abcdef")
        with s.reader("k") as r:
            with pytest.raises(TypeError, match="read-write"):
                r.readinto(buffer)
            assert r.remaining == 6
            assert r.read() == b"abcdef"


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_reader_cannot_be_copied_or_pickled_as_a_file_opened_rb_cannot(tmp_path, how):
    # copy.copy and copy.deepcopy made a second ValueReader over the same native reader:
    # a read of one moved the other on, and closing the copy left the original "open"
    # (closed False) with every read raising ValueError. A file opened "rb",
    # buffering=0 refuses them (TypeError), as pickle already refused the reader.
    import copy
    import pickle

    make = {"copy": copy.copy, "deepcopy": copy.deepcopy,
            "pickle": lambda r: pickle.loads(pickle.dumps(r))}[how]
    with Storage(tmp_path / "c.db") as s:
        s.set_value("k", b"abcdef")
        with s.reader("k") as r:
            with pytest.raises(TypeError, match="ValueReader"):
                make(r)
            assert r.read() == b"abcdef"
