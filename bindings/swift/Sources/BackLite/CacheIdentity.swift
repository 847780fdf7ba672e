import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which cache a `Storage` has open. Leases and read snapshots belong to the file, not
/// to the handle: a second `Storage` of the same file (another path to it, a link, the
/// same path opened twice) meets them as its own. So the bookkeeping that keeps a flow
/// from waiting for itself, `Computing` (the keys being computed) and `ChunkWalks` (the
/// walks of `forEachChunk`), knows a cache by this, not by its `Storage`.
enum CacheIdentity: Hashable, Sendable {
    /// A cache file, by its device and inode.
    case file(device: UInt64, inode: UInt64)
    /// One handle alone: an in-memory cache (private to its handle), or a file gone from
    /// its path before it could be looked at (no other handle can open it by name then).
    case handle(UInt)

    /// The identity of the cache `handle` has open at `path`, just after it opened.
    static func of(path: String, handle: OpaquePointer) -> CacheIdentity {
        var info = stat()
        if path != ":memory:", stat(path, &info) == 0 {
            return .file(device: UInt64(truncatingIfNeeded: info.st_dev),
                         inode: UInt64(truncatingIfNeeded: info.st_ino))
        }
        return .handle(UInt(bitPattern: Int(bitPattern: handle)))
    }
}
