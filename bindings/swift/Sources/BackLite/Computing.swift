import Foundation

/// The keys being computed by the current flow of control, by cache: the task and the
/// tasks it starts (a task-local value), or the thread outside any task. A memoised
/// call of one of them from inside its own compute (a recursion with the same
/// arguments) would wait for the key's lease, which is its own caller's: the async
/// memoiser for ever (the library renews that lease), `cachedExclusive` its whole wait.
/// Such a call computes at once and stores nothing; the outer call stores its value.
/// The lease is the file's, so a call through another `Storage` of the same file is
/// such a call too (`CacheIdentity`). A task the compute starts and does not await
/// inherits the keys, and may run on after the compute has returned: each key comes
/// with its compute's `Run`, and counts only while that runs.
enum Computing {
    struct Key: Hashable, Sendable {
        let cache: CacheIdentity
        let key: Data
    }

    /// One compute of a key: running until it returns or throws.
    final class Run: @unchecked Sendable {
        private let lock = NSLock()
        private var over = false

        var running: Bool {
            lock.lock()
            defer { lock.unlock() }
            return !over
        }

        func end() {
            lock.lock()
            over = true
            lock.unlock()
        }
    }

    @TaskLocal static var keys: [Key: Run] = [:]

    /// Whether the flow is inside the compute of `key` (its own caller's).
    static func isComputing(_ key: Key) -> Bool {
        keys[key]?.running ?? false
    }

    /// The keys with `key` added, for the compute `run`.
    static func adding(_ key: Key, _ run: Run) -> [Key: Run] {
        keys.merging([key: run]) { $1 }
    }
}

extension Storage {
    /// `key` as `Computing` knows it.
    func computingKey(_ key: some BackLiteKey) -> Computing.Key {
        Computing.Key(cache: identity, key: key.withKeyBytes { Data($0) })
    }
}
