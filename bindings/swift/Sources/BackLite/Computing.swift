import Foundation

/// The keys being computed by the current flow of control, by cache: the task and the
/// tasks it starts (a task-local value), or the thread outside any task. A memoised
/// call of one of them from inside its own compute (a recursion with the same
/// arguments) would wait for the key's lease, which is its own caller's: the async
/// memoiser for ever (the library renews that lease), `cachedExclusive` its whole wait.
/// Such a call computes at once and stores nothing; the outer call stores its value.
/// The lease is the file's, so a call through another `Storage` of the same file is
/// such a call too (`CacheIdentity`).
enum Computing {
    struct Key: Hashable, Sendable {
        let cache: CacheIdentity
        let key: Data
    }

    @TaskLocal static var keys: Set<Key> = []
}

extension Storage {
    /// `key` as `Computing` knows it.
    func computingKey(_ key: some BackLiteKey) -> Computing.Key {
        Computing.Key(cache: identity, key: key.withKeyBytes { Data($0) })
    }
}
