"""Types of the public API (the seed's ``backlite.types``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from inspect import Signature
from typing import Any, Literal, Protocol, Required, TypedDict, get_args

EvictionPolicy = Literal[
    "least-recently-used",
    "least-frequently-used",
    "most-recently-used",
    "first-in-first-out",
    "last-in-first-out",
]
"""The eviction policies, by the seed's names."""

EVICTION_POLICIES: frozenset[EvictionPolicy] = frozenset(get_args(EvictionPolicy))
"""Every eviction policy."""


class CacheItem(TypedDict, total=False):
    """A cache item: its bytes and, optionally, how long it has left to live.

    On ``set``, a missing or ``None`` ``expiration`` means the storage's
    ``default_expiration``. On ``get``, ``expiration`` is the time left, and is absent
    when the item never expires.
    """

    value: Required[bytes]
    expiration: timedelta | None


class ParamHashFunc(Protocol):
    """Turns a call's arguments into a stable string (part of the memo key)."""

    def __call__(self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], /) -> str:
        ...


@dataclass(frozen=True)
class Stats:
    """``backlite_stats``: the file's counters and this handle's activity."""

    count: int
    """Live entries in the file."""
    total_size: int
    """Sum of value lengths in the file (what the size limit bounds)."""
    max_size: int
    hits: int
    """This handle's lookups that found a live entry."""
    misses: int
    """This handle's lookups that did not."""
    evictions: int
    """Entries this handle evicted for size."""
    expirations: int
    """Expired entries this handle removed."""


@dataclass(frozen=True)
class LifetimeStats:
    """``backlite_lifetime_stats``: counts since the file was created or last zeroed, by
    every handle of every process (``Stats`` counts only this handle)."""

    hits: int
    """Lookups that found a live entry."""
    misses: int
    """Lookups that did not."""
    evictions: int
    """Entries evicted for size."""
    expirations: int
    """Expired entries removed."""
    since_ms: int
    """When counting began (the file's creation, its upgrade, or the last zero), in
    milliseconds since the Unix epoch."""

    @property
    def since(self) -> datetime:
        """``since_ms`` as an aware datetime (UTC)."""
        return datetime.fromtimestamp(self.since_ms / 1000, tz=timezone.utc)


#: The remote tier's modes (``Storage(remote_mode=...)``) and their C values
#: (``BACKLITE_REMOTE_MODE_*``).
REMOTE_MODES: dict[str, int] = {"read-write": 0, "read-only": 1, "write-behind": 2}


@dataclass(frozen=True)
class RemoteStats:
    """``backlite_remote_stats``: this handle's remote tier activity."""

    hits: int
    """Local misses the remote answered."""
    misses: int
    """Local misses it did not answer."""
    writes: int
    """Writes it acknowledged."""
    errors: int
    """Round trips that failed (refused, timed out, garbage)."""
    skipped: int
    """Calls not sent while it was backed off."""
    connected: bool
    """Whether the last round trip succeeded."""


@dataclass(frozen=True)
class CheckReport:
    """``backlite_check_report``: what ``Storage.check`` found and, with repair, fixed."""

    healthy: bool
    """Nothing is wrong (or everything wrong was repaired)."""
    integrity_ok: bool
    """SQLite's integrity check found the structure sound (if not: delete the file)."""
    repaired: bool
    entries: int
    damaged: int
    """Entries whose value failed its checksum or was missing."""
    orphan_values: int
    recorded_count: int
    recorded_total_size: int
    actual_count: int
    actual_total_size: int
