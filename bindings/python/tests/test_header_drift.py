"""The package keeps its own copies of what include/backlite.h defines (result codes,
expiration constants, policy names, ctypes structures and function signatures), since
the header does not ship with it. These tests parse the header and fail on any
difference, so a change to the C API cannot leave the Python binding behind silently.

The header is the repository's (found from this file), or $BACKLITE_INCLUDE_DIR's.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import get_args

import pytest

from backlite import _ffi, errors, types

HEADER = (
    Path(os.environ["BACKLITE_INCLUDE_DIR"]) / "backlite.h"
    if os.environ.get("BACKLITE_INCLUDE_DIR")
    else Path(__file__).resolve().parents[3] / "include" / "backlite.h"
)

# Header structs the package mirrors as ctypes Structures, by their names in _ffi.
MIRRORED = {
    "backlite_buf": "Buf",
    "backlite_entry": "Entry",
    "backlite_stats": "CStats",
    "backlite_remote_stats": "CRemoteStats",
    "backlite_check_report": "CCheckReport",
    "backlite_barrier": "Barrier",
}
# Header structs deliberately not mirrored, each with its reason.
NOT_MIRRORED: dict[str, str] = {
    "backlite_lifetime_stats": "the file's lifetime counters (0.2, issue 14) are read by "
    "the backlite command; the Python API has no call for them yet",
}

# Header function-pointer typedefs, by their CFUNCTYPE names in _ffi.
CALLBACKS = {
    "backlite_compute_fn": "COMPUTE_FN",
    "backlite_key_visitor": "KEY_VISITOR",
    "backlite_chunk_visitor": "CHUNK_VISITOR",
}

INTS = {
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t,
}


# ---- the header ---------------------------------------------------------------------


class Header:
    def __init__(self, text: str) -> None:
        self.text = text
        code = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        code = re.sub(r"//[^\n]*", " ", code)
        self.constants = {
            m[1]: int(m[2])
            for m in re.finditer(r"^#define (BACKLITE_\w+) \(?(-?\d+)\)?\s*$", code, re.M)
        }
        self.opaque = set(re.findall(r"typedef struct (\w+) \1;", code))
        self.int_typedefs = dict(
            (m[2], m[1]) for m in re.finditer(r"typedef (u?int\d+_t) (\w+);", code)
        )
        self.callbacks = {
            m[2]: (normalize(m[1]), split_params(m[3]))
            for m in re.finditer(r"typedef (.+?) \(\*(\w+)\)\((.*?)\);", code)
        }
        self.structs: dict[str, list[tuple[str, str]]] = {}
        for m in re.finditer(r"typedef struct (\w+) \{(.*?)\} \1;", code, re.S):
            self.structs[m[1]] = [parse_decl(d) for d in m[2].split(";") if d.strip()]
        self.functions = {
            m[2]: (normalize(m[1]), split_params(m[3]))
            for m in re.finditer(r"^([\w ]+?\**) ?(backlite_\w+)\((.*)\);$", code, re.M)
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


def split_params(params: str) -> list[str]:
    params = params.strip()
    if params in ("", "void"):
        return []
    return [parse_decl(p)[0] for p in params.split(",")]


def parse_decl(decl: str) -> tuple[str, str]:
    """`const struct backlite_x **name` -> ("backlite_x**", "name"); a function pointer
    member `int32_t (*lock)(void *user_data)` -> ("int32_t(void*)", "lock")."""
    decl = " ".join(decl.split())
    fp = re.fullmatch(r"(.+?) \(\*(\w+)\)\((.*)\)", decl)
    if fp:
        args = ",".join(split_params(fp[3]))
        return f"{normalize(fp[1])}({args})", fp[2]
    m = re.fullmatch(r"(.+?)\s*(\**)\s*(\w+)", decl)
    assert m, f"cannot parse the declaration {decl!r}"
    return normalize(m[1] + m[2]), m[3]


def normalize(ctype: str) -> str:
    ctype = re.sub(r"\b(const|struct)\b", " ", ctype)
    return "".join(ctype.split())


@pytest.fixture(scope="module")
def header() -> Header:
    assert HEADER.is_file(), f"the header is missing: {HEADER}"
    return Header(HEADER.read_text())


# ---- matching a C type with a ctypes type --------------------------------------------


def mismatch(header: Header, ctype: str, pytype) -> str | None:
    """None when `pytype` has the layout and meaning of C's `ctype`, else why not."""
    if "(" in ctype:  # a function pointer member: ret(args)
        ret, args = re.fullmatch(r"(.+?)\((.*)\)", ctype).groups()
        return callback_mismatch(header, ret, args.split(",") if args else [], pytype)
    stars = len(ctype) - len(ctype.rstrip("*"))
    base = ctype.rstrip("*")
    base = header.int_typedefs.get(base, base)
    if stars == 0:
        if base == "void":
            return None if pytype is None else f"void is None, not {pytype}"
        if base in INTS:
            ok = pytype is INTS[base]
            return None if ok else f"{base} is {INTS[base].__name__}, not {name(pytype)}"
        if base in header.callbacks:
            want = CALLBACKS.get(base)
            assert want, f"{base}: add its CFUNCTYPE to CALLBACKS in this test"
            ret, args = header.callbacks[base]
            why = callback_mismatch(header, ret, args, pytype)
            return why and f"{base} ({want}): {why}"
        return f"unknown C type {ctype!r}"
    if stars == 1:
        if base in ("uint8_t", "char"):
            ok = pytype in (ctypes.c_char_p, ctypes.c_void_p)
            return None if ok else f"{base}* is c_char_p or c_void_p, not {name(pytype)}"
        if base == "void" or base in header.opaque:
            ok = pytype is ctypes.c_void_p
            return None if ok else f"{base}* is c_void_p, not {name(pytype)}"
        if base in header.structs:
            mirror = getattr(_ffi, MIRRORED.get(base, ""), None)
            assert mirror is not None, f"{base} is used but not mirrored in _ffi"
            ok = pytype is ctypes.POINTER(mirror)
            return None if ok else f"{base}* is POINTER({mirror.__name__}), not {name(pytype)}"
        if base in INTS:
            ok = pytype is ctypes.POINTER(INTS[base])
            return None if ok else f"{base}* is POINTER({INTS[base].__name__}), not {name(pytype)}"
    if stars == 2 and (base == "void" or base in header.opaque):
        ok = pytype is ctypes.POINTER(ctypes.c_void_p)
        return None if ok else f"{base}** is POINTER(c_void_p), not {name(pytype)}"
    return f"unknown C type {ctype!r}"


def callback_mismatch(header: Header, ret: str, args: list[str], pytype) -> str | None:
    if not (isinstance(pytype, type) and issubclass(pytype, ctypes._CFuncPtr)):
        return f"a function pointer, not {name(pytype)}"
    if len(args) != len(pytype._argtypes_):
        return f"{len(args)} parameters, not {len(pytype._argtypes_)}"
    why = mismatch(header, ret, pytype._restype_)
    if why:
        return f"return type: {why}"
    for i, (c, p) in enumerate(zip(args, pytype._argtypes_)):
        why = mismatch(header, c, p)
        if why:
            return f"parameter {i}: {why}"
    return None


def name(pytype) -> str:
    return getattr(pytype, "__name__", repr(pytype))


# ---- constants ------------------------------------------------------------------------


def test_the_header_is_parsed(header):
    """Guards the parser itself: if the header's shape changes, fail here, not by
    finding nothing to compare."""
    assert header.group("BACKLITE_RESULT_")["BACKLITE_RESULT_OK"] == 0
    assert len(header.group("BACKLITE_EVICTION_POLICY_")) == 5
    assert set(MIRRORED) <= set(header.structs)
    assert {"backlite_storage_open", "backlite_storage_get"} <= set(header.functions)
    assert set(CALLBACKS) == set(header.callbacks)


def test_the_ffi_constants_are_the_headers(header):
    """Every upper-case integer of _ffi is BACKLITE_RESULT_<NAME> or BACKLITE_<NAME>,
    with the header's value (OK, NOT_FOUND, ..., EXPIRATION_NEVER)."""
    ours = {
        k: v for k, v in vars(_ffi).items()
        if k.isupper() and isinstance(v, int) and not isinstance(v, bool)
    }
    assert ours, "no constants found in _ffi"
    for k, v in ours.items():
        c_name = next(
            (n for n in (f"BACKLITE_RESULT_{k}", f"BACKLITE_{k}") if n in header.constants), None
        )
        assert c_name, f"_ffi.{k} has no counterpart in the header"
        assert v == header.constants[c_name], f"_ffi.{k} = {v}, but the header's {c_name} = {header.constants[c_name]}"


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


# ---- structs and functions -------------------------------------------------------------


def test_every_header_struct_is_mirrored_or_left_out_with_a_reason(header):
    assert set(MIRRORED) | set(NOT_MIRRORED) == set(header.structs), (
        "a struct of the header is neither mirrored in _ffi (MIRRORED) nor listed in "
        "NOT_MIRRORED with a reason"
    )
    structures = {
        k for k, v in vars(_ffi).items()
        if isinstance(v, type) and issubclass(v, ctypes.Structure) and v is not ctypes.Structure
    }
    assert structures == set(MIRRORED.values()), (
        f"_ffi's ctypes Structures {sorted(structures)}: add each to MIRRORED in this test"
    )


@pytest.mark.parametrize("c_name", sorted(MIRRORED))
def test_the_ctypes_structure_has_the_headers_fields(header, c_name):
    py = getattr(_ffi, MIRRORED[c_name])
    c_fields = header.structs[c_name]
    py_fields = [(f[0], f[1]) for f in py._fields_]
    assert [n for _, n in c_fields] == [n for n, _ in py_fields], (
        f"{py.__name__}'s field names or order differ from {c_name}'s"
    )
    for (ctype, field), (_, pytype) in zip(c_fields, py_fields):
        why = mismatch(header, ctype, pytype)
        assert why is None, f"{py.__name__}.{field}: {why}"


def test_the_declared_functions_have_the_headers_signatures(header):
    """Every function _ffi declares (restype and argtypes) has the header's prototype."""
    declared = {
        n: getattr(_ffi.lib, n) for n in header.functions if getattr(_ffi.lib, n).argtypes is not None
    }
    assert declared, "_ffi declares none of the header's functions"
    problems = []
    for fn_name, fn in declared.items():
        ret, params = header.functions[fn_name]
        if len(params) != len(fn.argtypes):
            problems.append(f"{fn_name}: {len(params)} parameters, _ffi declares {len(fn.argtypes)}")
            continue
        why = mismatch(header, ret, fn.restype)
        if why:
            problems.append(f"{fn_name}: return type: {why}")
        for i, (c, p) in enumerate(zip(params, fn.argtypes)):
            why = mismatch(header, c, p)
            if why:
                problems.append(f"{fn_name}: parameter {i}: {why}")
    assert not problems, "\n".join(problems)
