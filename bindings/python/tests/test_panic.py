"""A Rust panic in the native module (a bug of BackLite) reaches Python as
``backlite.PanicError``, the C API's BACKLITE_RESULT_PANIC, rather than PyO3's
``PanicException`` (a BaseException that ``except Exception`` lets through), and the
handle stays usable.

The panics come from ``_native._panic_for_tests``, which only the ``test-hooks`` build
of the module has: run_tests.sh builds that wheel too and runs this file against it
with BACKLITE_TEST_HOOKS=1 (then a missing hook fails). Against the release wheel, which
has no hook, the file is skipped.
"""

from __future__ import annotations

import os

import pytest

import backlite
from backlite import _native

_panic = getattr(_native, "_panic_for_tests", None)
if _panic is None:
    if os.environ.get("BACKLITE_TEST_HOOKS") == "1":
        raise RuntimeError("BACKLITE_TEST_HOOKS=1 but the native module has no _panic_for_tests")
    pytest.skip("the release module has no test hooks (run_tests.sh runs this file against "
                "the test-hooks build)", allow_module_level=True)


@pytest.mark.parametrize(
    "place, message",
    [
        ("gil", "test panic with the GIL held"),
        ("detached", "test panic without the GIL"),
        ("core", "test panic inside the core's call"),
    ],
)
def test_a_panic_raises_panic_error(storage, place, message):
    with pytest.raises(backlite.PanicError) as caught:
        _panic(storage, place, b"k")
    error = caught.value
    assert isinstance(error, backlite.BackLiteError)
    assert isinstance(error, Exception)
    assert error.code == _native.PANIC == 11
    assert message in error.message


def test_the_storage_works_after_a_panic_inside_the_core(storage):
    storage.set("before", {"value": b"1"})
    with pytest.raises(backlite.PanicError):
        _panic(storage, "core", b"k")
    # Unwinding released the key's lease: the next caller gets it at once, rather
    # than waiting for a holder that is gone.
    code, value, lease, _pause = storage._lease_step(b"k", 0)
    assert (code, value) == (_native.NOT_FOUND, None)
    assert lease is not None
    lease.fulfill(b"computed", _native.EXPIRATION_DEFAULT)
    assert storage.get_value(b"k") == b"computed"
    storage.set("after", {"value": b"2"})
    assert storage.get_value("before") == b"1"
    assert storage.get_value("after") == b"2"


def test_an_unknown_place_is_a_value_error(storage):
    with pytest.raises(ValueError, match="no such place"):
        _panic(storage, "nowhere", b"k")
