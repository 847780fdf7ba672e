import Foundation

/// The threads inside a `forEachChunk` walk, by cache file, and how many walks deep (a
/// body may walk again). The library runs such a walk's body inside a read snapshot of
/// the file, and a vacuum cannot truncate the write-ahead log past a snapshot: one
/// called from the walk's own thread, through any `Storage` of that file, would wait
/// the whole busy timeout for a snapshot that ends only after it returns, then throw
/// `.busy`. `Storage.vacuum()` asks here first and refuses at once.
final class ChunkWalks: @unchecked Sendable {
    /// The walks of this process: the snapshot is the file's, whichever of the
    /// process's handles of that file then vacuums.
    static let shared = ChunkWalks()

    private struct Walker: Hashable {
        let thread: pthread_t
        let cache: CacheIdentity
    }

    private let lock = NSLock()
    private var depth: [Walker: Int] = [:]

    /// Runs `body` as a walk of `cache` by this thread.
    func walk<R>(_ cache: CacheIdentity, _ body: () throws -> R) rethrows -> R {
        let me = Walker(thread: pthread_self(), cache: cache)
        lock.lock()
        depth[me, default: 0] += 1
        lock.unlock()
        defer {
            lock.lock()
            depth[me] = depth[me] == 1 ? nil : depth[me].map { $0 - 1 }
            lock.unlock()
        }
        return try body()
    }

    /// Whether the calling thread is inside a walk of `cache`.
    func onThisThread(_ cache: CacheIdentity) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return depth[Walker(thread: pthread_self(), cache: cache)] != nil
    }
}
