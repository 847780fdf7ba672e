import CBackLite
import Foundation

/// Counts since the file was created or last zeroed, by every handle of every process.
public struct LifetimeStats: Hashable, Sendable {
    /// Lookups that found a live entry.
    public var hits: UInt64
    /// Lookups that did not.
    public var misses: UInt64
    /// Entries evicted for size.
    public var evictions: UInt64
    /// Expired entries removed.
    public var expirations: UInt64
    /// When counting began: the file's creation, its upgrade, or the last zero.
    public var since: Date
}

extension Storage {
    /// The file's lifetime counters. Hits and misses reach the file with a process's
    /// next write: they include this process's unwritten ones, and another process's
    /// once it has written (at the latest when its last handle closes).
    public func lifetimeStats() throws -> LifetimeStats {
        var s = backlite_lifetime_stats()
        try cCall { backlite_storage_lifetime_stats(handle, &s, $0) }
        return LifetimeStats(hits: s.hits, misses: s.misses, evictions: s.evictions,
                             expirations: s.expirations,
                             since: Date(timeIntervalSince1970: Double(s.since_ms) / 1000))
    }

    /// Sets the lifetime counters to zero and starts counting again from now. The
    /// per-handle counters of `stats()` are kept.
    public func zeroStats() throws {
        try cCall { backlite_storage_zero_stats(handle, $0) }
    }
}
