import Foundation

/// The threads inside a `forEachChunk` walk of one cache file, and how many walks deep
/// (a body may walk again). The library runs such a walk's body inside a read snapshot
/// of the file, and a vacuum cannot truncate the write-ahead log past a snapshot: one
/// called from the walk's own thread would wait the whole busy timeout for a snapshot
/// that ends only after it returns, then throw `.busy`. `Storage.vacuum()` asks here
/// first and refuses at once.
final class ChunkWalks: @unchecked Sendable {
    private let lock = NSLock()
    private var depth: [pthread_t: Int] = [:]

    /// Runs `body` as a walk of this thread.
    func walk<R>(_ body: () throws -> R) rethrows -> R {
        let me = pthread_self()
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

    /// Whether the calling thread is inside a walk.
    var onThisThread: Bool {
        lock.lock()
        defer { lock.unlock() }
        return depth[pthread_self()] != nil
    }
}
