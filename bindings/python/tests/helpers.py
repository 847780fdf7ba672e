"""Functions that child processes import (multiprocessing spawn, subprocess)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import backlite


def record(path: str) -> None:
    """Appends one line to ``path``: one computation happened (any process)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
    finally:
        os.close(fd)


def count(path: str) -> int:
    p = Path(path)
    return len(p.read_bytes().splitlines()) if p.exists() else 0


def make_slow_square(db: str, log: str, delay: float = 0.2):
    storage = backlite.Storage(db)

    @backlite.cached(storage=storage)
    def slow_square(x):
        record(log)
        time.sleep(delay)
        return x * x

    return slow_square


def make_async_slow_square(db: str, log: str, delay: float = 0.2):
    import asyncio

    storage = backlite.Storage(db)

    @backlite.async_cached(storage=storage)
    async def slow_square(x):
        record(log)
        await asyncio.sleep(delay)
        return x * x

    return slow_square


def worker_set_keys(db: str, worker: int, n: int) -> int:
    with backlite.Storage(db) as s:
        for i in range(n):
            s.set_one(f"w{worker}-{i}", {"value": f"{worker}:{i}".encode()})
            s.set_one("shared", {"value": f"{worker}".encode()})
        seen = 0
        for i in range(n):
            item = s.get_one(f"w{worker}-{i}")
            assert item == {"value": f"{worker}:{i}".encode()}
            seen += 1
        return seen


def worker_slow_square(db: str, log: str, start_at: float) -> int:
    f = make_slow_square(db, log)
    while time.time() < start_at:
        time.sleep(0.001)
    return f(7)


def worker_async_slow_square(db: str, log: str, start_at: float) -> int:
    import asyncio

    f = make_async_slow_square(db, log)

    async def main():
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        return await f(7)

    return asyncio.run(main())
