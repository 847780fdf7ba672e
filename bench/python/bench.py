"""Python cache benchmark: this package vs diskcache vs the original backlite (PyPI).

    python bench.py measure --lib backlite,diskcache,diskcache-lru --n N --rounds R --dir DIR
        prints one JSON line per library, operation and round:
        {"lib", "op", "n", "round", "ops_per_s"}; within one process the libraries take
        turns round by round, the first of each round alternating
    python bench.py table RESULTS.jsonl
        prints the table, with ratios to diskcache (default settings)

bench/python/run.sh drives both in their venvs (the original has a venv of its own);
keys are 16 bytes ("k" and 15 digits), values 100 bytes. Every figure is the median of
--rounds rounds of N operations (a fresh cache for the set rows).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

VALUE = bytes(range(100))
OPS = ["set", "get-hit", "get-miss", "set-evict", "memo-hit"]
OP_TITLES = {
    "set": "set (new keys)",
    "get-hit": "get, hit",
    "get-miss": "get, miss",
    "set-evict": "set under eviction",
    "memo-hit": "memoised call, hit",
}


def key(i: int) -> str:
    return f"k{i:015d}"


def timed(n: int, loop: Callable[[], None]) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        loop()
        dt = time.perf_counter() - t0
    finally:
        gc.enable()
    return n / dt


# -- the three libraries behind one small interface ----------------------------------


class Backlite:
    """This package (bindings/python), through the seed's API."""

    name = "backlite"

    def __init__(self) -> None:
        import backlite

        self.m = backlite

    def open(self, path: str, size_limit: int | None = None) -> Any:
        if size_limit is None:
            return self.m.Storage(path + ".db")
        return self.m.Storage(path + ".db", size_limit=size_limit)

    def set(self, c: Any) -> Callable[[str, bytes], None]:
        return lambda k, v: c.set_one(k, {"value": v})

    def get(self, c: Any) -> Callable[[str], Any]:
        return c.get_one

    def missing(self, r: Any) -> bool:
        return r is None

    def memoize(self, c: Any, f: Callable) -> Callable:
        return self.m.cached(storage=c)(f)

    def close(self, c: Any) -> None:
        c.close()


class Original(Backlite):
    """backlite 0.0.6 from PyPI (the seed), on pysqlite3-binary's newer SQLite."""

    name = "original"

    def __init__(self) -> None:
        import pysqlite3

        sys.modules["sqlite3"] = pysqlite3  # the original needs SQLite >= 3.42
        import backlite

        self.m = backlite

    def close(self, c: Any) -> None:
        pass


class DiskCache:
    """diskcache with its defaults (eviction: least-recently-stored)."""

    name = "diskcache"
    policy: str | None = None

    def __init__(self) -> None:
        import diskcache

        self.m = diskcache

    def open(self, path: str, size_limit: int | None = None) -> Any:
        kw = {} if self.policy is None else {"eviction_policy": self.policy}
        c = self.m.Cache(path, **kw)
        if size_limit is not None:
            # diskcache bounds the file's volume (pages and all), not the values: set
            # its limit to the volume the prefilled cache has, so every set culls.
            c.reset("size_limit", max(c.volume(), 1))
        return c

    def set(self, c: Any) -> Callable[[str, bytes], None]:
        return c.set

    def get(self, c: Any) -> Callable[[str], Any]:
        return c.get

    def missing(self, r: Any) -> bool:
        return r is None

    def memoize(self, c: Any, f: Callable) -> Callable:
        return c.memoize()(f)

    def close(self, c: Any) -> None:
        c.close()


class DiskCacheLRU(DiskCache):
    """diskcache with eviction_policy="least-recently-used" (a get writes)."""

    name = "diskcache-lru"
    policy = "least-recently-used"


LIBS = {cls.name: cls for cls in (Backlite, Original, DiskCache, DiskCacheLRU)}


class Runner:
    """One library's caches and one round of each operation."""

    def __init__(self, lib: Any, n: int, base: str) -> None:
        self.lib, self.n, self.base = lib, n, base
        self.keys = [key(i) for i in range(n)]
        self.absent = [key(n + i) for i in range(n)]
        self.counter = 0
        # one filled cache for the gets and the memoised calls
        self.filled = lib.open(self.path())
        put = lib.set(self.filled)
        for k in self.keys:
            put(k, VALUE)
        self.get = lib.get(self.filled)
        if any(lib.missing(self.get(k)) for k in self.keys[:100]):
            raise SystemExit(f"{lib.name}: a stored key reads as missing")
        if not lib.missing(self.get(self.absent[0])):
            raise SystemExit(f"{lib.name}: an absent key reads as present")

        def f(i: int) -> bytes:
            return VALUE

        self.memo = lib.memoize(self.filled, f)
        for i in range(n):
            self.memo(i)

    def path(self) -> str:
        self.counter += 1
        return os.path.join(self.base, f"{self.lib.name}-{self.counter}")

    def run(self, op: str) -> float:
        lib, n, keys = self.lib, self.n, self.keys
        if op == "set":  # N new keys into an empty cache
            c = lib.open(self.path())
            put = lib.set(c)
            rate = timed(n, lambda: [put(k, VALUE) for k in keys])
            lib.close(c)
            return rate
        if op == "get-hit":
            get = self.get
            return timed(n, lambda: [get(k) for k in keys])
        if op == "get-miss":
            get, absent = self.get, self.absent
            return timed(n, lambda: [get(k) for k in absent])
        if op == "memo-hit":
            g = self.memo
            return timed(n, lambda: [g(i) for i in range(n)])
        if op == "set-evict":  # a cache full at N/10 entries takes N new keys
            full = max(n // 10, 1)
            path = self.path()
            c = lib.open(path)
            put = lib.set(c)
            for k in self.absent[:full]:
                put(k, VALUE)
            lib.close(c)
            c = lib.open(path, full * len(VALUE))
            put = lib.set(c)
            rate = timed(n, lambda: [put(k, VALUE) for k in keys])
            lib.close(c)
            return rate
        raise ValueError(op)

    def close(self) -> None:
        self.lib.close(self.filled)


def cmd_measure(args: argparse.Namespace) -> None:
    names = args.lib.split(",")
    base = tempfile.mkdtemp(prefix="bench-", dir=args.dir)
    try:
        runners = [Runner(LIBS[name](), args.n, base) for name in names]
        for op in OPS:
            for r in range(args.rounds):
                # alternate which library goes first
                order = runners if r % 2 == 0 else runners[::-1]
                for runner in order:
                    rate = runner.run(op)
                    line = {"lib": runner.lib.name, "op": op, "n": args.n, "round": r, "ops_per_s": rate}
                    print(json.dumps(line), flush=True)
        for runner in runners:
            runner.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}"


def cmd_table(args: argparse.Namespace) -> None:
    samples: dict[tuple[str, str], list[float]] = {}
    raw: list[dict[str, Any]] = []
    ns: dict[str, int] = {}
    with open(args.results) as fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            raw.append(r)
            samples.setdefault((r["lib"], r["op"]), []).append(r["ops_per_s"])
            ns[r["lib"]] = r["n"]
    # Several invocations (rounds interleaved across libraries): their median.
    rows = {k: statistics.median(v) for k, v in samples.items()}
    cols = [c for c in ("backlite", "diskcache", "diskcache-lru", "original") if c in ns]
    heads = {
        "backlite": "backlite (this)",
        "diskcache": "diskcache",
        "diskcache-lru": "diskcache LRU",
        "original": "original 0.0.6",
    }
    header = ["operation (ops/s)"]
    for c in cols:
        header.append(heads[c])
        if c != "diskcache":
            header.append("x diskcache")
    table = [header]
    for op in OPS:
        base = rows.get(("diskcache", op))
        row = [OP_TITLES[op]]
        for c in cols:
            v = rows.get((c, op))
            row.append(fmt_rate(v))
            if c != "diskcache":
                row.append(f"{v / base:.2f}x" if v and base else "-")
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(r))]
        return "| " + " | ".join(cells) + " |"

    print(line(table[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table[1:]:
        print(line(r))
    print()
    print("N per operation: " + ", ".join(f"{heads[c]} {ns[c]:,}" for c in cols))
    lo_hi = []
    for op in OPS:
        a = {r.get("round"): r["ops_per_s"] for r in raw if r["lib"] == "backlite" and r["op"] == op}
        b = {r.get("round"): r["ops_per_s"] for r in raw if r["lib"] == "diskcache" and r["op"] == op}
        ratios = [a[k] / b[k] for k in a if k in b]
        if ratios:
            lo_hi.append(f"{OP_TITLES[op]} {min(ratios):.2f}..{max(ratios):.2f}")
    if lo_hi:
        print("backlite/diskcache ratio per round, lowest..highest: " + "; ".join(lo_hi))

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--lib", required=True, help="comma-separated: " + ",".join(sorted(LIBS)))
    m.add_argument("--n", type=int, default=20_000)
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--dir", default=None, help="where the cache files go (a real disk)")
    m.set_defaults(func=cmd_measure)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.set_defaults(func=cmd_table)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
