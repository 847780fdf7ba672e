"""The remote tier option (``Storage(remote=...)``) against a private redis-server."""

from __future__ import annotations

import asyncio
import pickle
import shutil
import socket
import subprocess
import time
from datetime import timedelta

import pytest

import backlite


@pytest.fixture
def redis_url(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is required (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.005)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_two_files_share_values_through_the_remote(tmp_path, redis_url):
    kw = dict(remote=redis_url, remote_namespace="py", remote_timeout=timedelta(milliseconds=300))
    a = backlite.Storage(tmp_path / "a.db", **kw)
    a.set_value("k", b"shared")
    b = backlite.Storage(tmp_path / "b.db", remote_mode="read-only", **kw)
    assert b.get_value("k") == b"shared"
    st = b.remote_stats()
    assert st.hits == 1 and st.connected
    c = backlite.Storage(tmp_path / "c.db", remote_mode="write-behind", **kw)
    c.set_value("later", b"1")
    c.close()
    d = backlite.Storage(tmp_path / "d.db", **kw)
    assert d.get_value("later") == b"1"
    d.close()
    for s in (a, b):
        s.close()


def test_an_async_cached_result_is_shared_through_the_remote(tmp_path, redis_url):
    # async_cached stores through the library's lease (lease_step): its result must
    # reach the remote as a set's does, or every machine computes it again.
    kw = dict(remote=redis_url, remote_namespace="py", remote_timeout=timedelta(seconds=2))
    a = backlite.Storage(tmp_path / "a.db", **kw)
    b = backlite.Storage(tmp_path / "b.db", **kw)
    calls = []

    async def square(x):
        calls.append(x)
        return x * x

    # Both decorated first: a closure is keyed with what it holds (`calls`) then.
    on_a = backlite.async_cached(storage=a)(square)
    on_b = backlite.async_cached(storage=b)(square)
    assert asyncio.run(on_a(7)) == 49
    assert asyncio.run(on_b(7)) == 49
    assert calls == [7]
    assert b.remote_stats().hits == 1
    for s in (a, b):
        s.close()


def test_bad_remote_options_raise_and_write_nothing(tmp_path):
    cases = [
        dict(remote="memcache://h:1"),
        dict(remote="redis://h:notaport"),
        dict(remote="redis://h:1", remote_namespace="with space"),
        dict(remote="redis://h:1", remote_timeout=timedelta(0)),
        dict(remote="redis://h:1", remote_timeout=timedelta(milliseconds=-5)),
        dict(remote="redis://h:1", remote_mode="sideways"),
    ]
    for i, kw in enumerate(cases):
        with pytest.raises((backlite.InvalidArgumentError, ValueError)):
            backlite.Storage(tmp_path / f"{i}.db", mkdir=False, **kw)
        assert not (tmp_path / f"{i}.db").exists()


def test_a_refused_url_never_shows_its_password_and_schemes_take_any_case(tmp_path, redis_url):
    # Reserved characters left bare in a password make the URL malformed.
    for url in ["redis://u:s3/cret@h:1", "redis://:s3?cret@h:1", "redis://:s3#cret@h:1/0",
                "redis://h:1/0?pass=s3@cret", "rediss+cluster://u:s3/cret@h:1,h:2"]:
        with pytest.raises(backlite.InvalidArgumentError) as e:
            backlite.Storage(tmp_path / "refused.db", mkdir=False, remote=url)
        assert "cret" not in str(e.value), str(e.value)
        assert not (tmp_path / "refused.db").exists()
    s = backlite.Storage(tmp_path / "upper.db", remote=redis_url.replace("redis://", "REDIS://"),
                         remote_timeout=timedelta(seconds=5))
    s.set_value("k", b"v")
    st = s.remote_stats()
    assert st.writes == 1 and st.errors == 0 and st.connected
    s.close()


def test_a_pickled_storage_keeps_its_remote_tier_and_lease_length(tmp_path, redis_url):
    # multiprocessing sends a Storage pickled: the child's handle must reach the same
    # remote (else it computes and serves alone) and keep the lease length it was given.
    kw = dict(remote=redis_url, remote_namespace="pk", remote_timeout=timedelta(milliseconds=300),
              remote_mode="read-only", lease_length=timedelta(seconds=7))
    with backlite.Storage(tmp_path / "a.db", remote=redis_url, remote_namespace="pk") as a:
        a.set_value("k", b"shared")
    with backlite.Storage(tmp_path / "b.db", **kw) as b, pickle.loads(pickle.dumps(b)) as again:
        assert again.get_value("k") == b"shared"
        assert again.remote_stats().hits == 1
        assert again._remote == b._remote
        assert again._lease_length == timedelta(seconds=7)


def test_bad_remote_options_leave_no_folder_behind(tmp_path):
    # mkdir=True (the default) makes the cache's missing parent folders: an open that
    # fails on its options must not leave them, any more than the file.
    for i, kw in enumerate([
        dict(remote="memcache://h:1"),
        dict(remote="redis://u:secret@h:notaport"),
        dict(remote="redis://h:1", remote_namespace="with space"),
        dict(remote="redis://h:1", remote_namespace="nul\0"),
    ]):
        with pytest.raises(backlite.InvalidArgumentError) as e:
            backlite.Storage(tmp_path / f"new{i}" / "deeper" / "c.db", **kw)
        assert "secret" not in str(e.value) and "secret" not in repr(e.value)
        assert list(tmp_path.iterdir()) == [], kw
    # A folder that was already there stays, with what it holds.
    (tmp_path / "kept").mkdir()
    with pytest.raises(backlite.InvalidArgumentError):
        backlite.Storage(tmp_path / "kept" / "new" / "c.db", remote="memcache://h:1")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_remote_timeout_of_another_type_is_a_type_error(tmp_path):
    # As for busy_timeout, lease_length and default_expiration: a wrong type is a
    # TypeError, a timedelta out of range a ValueError.
    for wrong in (5, 0.25, "250ms"):
        with pytest.raises(TypeError, match="remote_timeout"):
            backlite.Storage(tmp_path / "c.db", remote="redis://h:1", remote_timeout=wrong)
    with pytest.raises(ValueError, match="remote_timeout"):
        backlite.Storage(tmp_path / "c.db", remote="redis://h:1", remote_timeout=timedelta(0))
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_remote_opens_and_every_call_succeeds_locally(tmp_path):
    # Port 1 on the loopback: refused. The reader works too; remote_stats says it.
    big = bytes(range(256)) * 1200
    for mode in backlite.REMOTE_MODES:
        with backlite.Storage(tmp_path / f"{mode}.db", remote="redis://u:hunter2@127.0.0.1:1",
                              remote_timeout=timedelta(milliseconds=100), remote_mode=mode) as s:
            s.set_value("k", big)
            assert s.get_value("missing") is None
            with s.reader("k") as r:
                assert r.read() == big
            st = s.remote_stats()
            assert isinstance(st, backlite.RemoteStats)
            assert not st.connected and st.errors > 0 and st.hits == 0
            assert "hunter2" not in repr(s) + repr(st)
