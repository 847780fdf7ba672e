"""The package's numbers and names come from BackLite's Rust core through the native
module (result codes, expiration constants, policy names) or are kept in Python (the
remote modes, the exception classes, the fields of Stats, RemoteStats and CheckReport),
while include/backlite.h states them for every other binding. These tests parse the
header and fail on any difference, so neither side can change without the other.

The header is the repository's (found from this file), or $BACKLITE_INCLUDE_DIR's.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import get_args

import pytest

from backlite import _native, errors, types

HEADER = (
    Path(os.environ["BACKLITE_INCLUDE_DIR"]) / "backlite.h"
    if os.environ.get("BACKLITE_INCLUDE_DIR")
    else Path(__file__).resolve().parents[3] / "include" / "backlite.h"
)

# Header structs the package mirrors as dataclasses (same fields, same order).
MIRRORED = {
    "backlite_stats": types.Stats,
    "backlite_remote_stats": types.RemoteStats,
    "backlite_check_report": types.CheckReport,
    "backlite_lifetime_stats": types.LifetimeStats,
}
# Header structs with no Python counterpart, each with its reason.
NOT_MIRRORED: dict[str, str] = {
    "backlite_buf": "C's way to hand over bytes; the native module returns bytes",
    "backlite_entry": "C's item of set_many; the native module takes Python tuples",
    "backlite_barrier": "C's lock callbacks; the native module calls the Python barrier",
}


class Header:
    def __init__(self, text: str) -> None:
        self.text = text
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        code = re.sub(r"//[^\n]*", " ", code)
        self.constants = {
            m[1]: int(m[2])
            for m in re.finditer(r"^#define (BACKLITE_\w+) \(?(-?\d+)\)?\s*$", code, re.M)
        }
        # Each struct's field names, in order.
        self.structs: dict[str, list[str]] = {
            m[1]: [field_name(d) for d in m[2].split(";") if d.strip()]
            for m in re.finditer(r"typedef struct (\w+) \{(.*?)\} \1;", code, re.S)
        }

    def group(self, prefix: str) -> dict[str, int]:
        return {k: v for k, v in self.constants.items() if k.startswith(prefix)}

    def policy_names(self) -> list[str]:
        """The seed's policy names, from each BACKLITE_EVICTION_POLICY_* doc comment,
        ordered by value."""
        found = re.findall(
            r'/\*\*\s*\n\s*\*\s*"([a-z-]+)"(?:(?!\*/).)*\*/\s*#define BACKLITE_EVICTION_POLICY_\w+ (\d+)',
            self.text,
            re.S,
        )
        return [name for name, _ in sorted(found, key=lambda nv: int(nv[1]))]


def field_name(decl: str) -> str:
    """`uint64_t count` -> "count"; a function pointer member `int32_t (*lock)(void
    *user_data)` -> "lock"."""
    decl = " ".join(decl.split())
    m = re.fullmatch(r".+? \(\*(\w+)\)\(.*\)", decl) or re.fullmatch(r".+?[\s*](\w+)", decl)
    assert m, f"cannot parse the declaration {decl!r}"
    return m[1]


@pytest.fixture(scope="module")
def header() -> Header:
    assert HEADER.is_file(), f"the header is missing: {HEADER}"
    return Header(HEADER.read_text())


# ---- constants ------------------------------------------------------------------------


def test_the_header_is_parsed(header):
    """Guards the parser itself: if the header's shape changes, fail here, not by
    finding nothing to compare."""
    assert header.group("BACKLITE_RESULT_")["BACKLITE_RESULT_OK"] == 0
    assert len(header.group("BACKLITE_EVICTION_POLICY_")) == 5
    assert set(MIRRORED) <= set(header.structs)
    assert header.structs["backlite_stats"][0] == "count"
    assert header.structs["backlite_barrier"] == ["user_data", "lock", "unlock"]


def test_the_native_constants_are_the_headers(header):
    """Every upper-case integer of the native module is BACKLITE_RESULT_<NAME> or
    BACKLITE_<NAME> with the header's value, and every result code of the header is
    one of them."""
    ours = {
        k: v for k, v in vars(_native).items()
        if k.isupper() and isinstance(v, int) and not isinstance(v, bool)
    }
    assert ours, "no constants found in _native"
    for k, v in ours.items():
        c_name = next(
            (n for n in (f"BACKLITE_RESULT_{k}", f"BACKLITE_{k}") if n in header.constants), None
        )
        assert c_name, f"_native.{k} has no counterpart in the header"
        assert v == header.constants[c_name], f"_native.{k} = {v}, but the header's {c_name} = {header.constants[c_name]}"
    for c_name, value in header.group("BACKLITE_RESULT_").items():
        name = c_name.removeprefix("BACKLITE_RESULT_")
        assert ours.get(name) == value, f"the header's {c_name} = {value} is not _native.{name}"
    for c_name in ("BACKLITE_EXPIRATION_DEFAULT", "BACKLITE_EXPIRATION_NEVER", "BACKLITE_MAX_KEY_SIZE",
                   "BACKLITE_MAX_VALUE_SIZE"):
        assert c_name.removeprefix("BACKLITE_") in ours, f"_native lacks {c_name}"


def test_every_result_code_of_the_header_has_its_exception_class(header):
    """errors._BY_CODE maps each failure code to the class documented for it (its
    docstring starts with the code's name), and knows no code the header lacks."""
    codes = header.group("BACKLITE_RESULT_")
    failures = {n: v for n, v in codes.items() if v != codes["BACKLITE_RESULT_OK"]}
    by_code = errors._BY_CODE
    assert sorted(by_code) == sorted(failures.values()), (
        f"errors._BY_CODE has codes {sorted(by_code)}, the header {sorted(failures.values())}"
    )
    for c_name, value in failures.items():
        cls = by_code[value]
        doc = (cls.__doc__ or "").strip()
        assert doc.split()[0].rstrip(":") == c_name, (
            f"code {value} maps to {cls.__name__}, documented as {doc.split()[0]!r}, "
            f"but the header names it {c_name}"
        )
        stated = re.match(r"\w+ \((-?\d+)\)", doc)
        if stated:
            assert int(stated[1]) == value, f"{cls.__name__}'s docstring says {stated[1]}, the header {value}"


def test_the_eviction_policy_names_are_the_headers_in_order(header):
    names = header.policy_names()
    assert len(names) == len(header.group("BACKLITE_EVICTION_POLICY_"))
    assert list(get_args(types.EvictionPolicy)) == names
    assert types.EVICTION_POLICIES == frozenset(names)
    assert _native.eviction_policies == names  # the core's, in the C enum's order


def test_the_remote_modes_are_the_headers(header):
    modes = {
        c_name.removeprefix("BACKLITE_REMOTE_MODE_").lower().replace("_", "-"): value
        for c_name, value in header.group("BACKLITE_REMOTE_MODE_").items()
    }
    assert len(modes) == 3
    assert types.REMOTE_MODES == modes


# ---- structs ---------------------------------------------------------------------------


def test_every_header_struct_is_mirrored_or_left_out_with_a_reason(header):
    assert set(MIRRORED) | set(NOT_MIRRORED) == set(header.structs), (
        "a struct of the header is neither mirrored (MIRRORED) nor listed in "
        "NOT_MIRRORED with a reason"
    )


@pytest.mark.parametrize("c_name", sorted(MIRRORED))
def test_the_dataclass_has_the_headers_fields_in_order(header, c_name):
    py = MIRRORED[c_name]
    c_fields = header.structs[c_name]
    py_fields = [f.name for f in dataclasses.fields(py)]
    assert py_fields == c_fields, f"{py.__name__}'s fields differ from {c_name}'s"
