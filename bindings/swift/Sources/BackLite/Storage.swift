import CBackLite
import Foundation

/// The library's version, e.g. "0.1.0".
public var libraryVersion: String { String(cString: backlite_version()) }

/// The version of the header this package was compiled against.
public let headerVersion: String = BACKLITE_VERSION_STRING

/// Moves a library buffer into `Data` and frees it.
func takeData(_ buf: inout backlite_buf) -> Data {
    defer { backlite_buf_free(&buf) }
    guard let bytes = buf.data, buf.len > 0 else { return Data() }
    return Data(bytes: bytes, count: buf.len)
}

/// A value and the time it has left, from `Storage.item(_:)`.
public struct CacheItem: Hashable, Sendable {
    public var value: Data
    /// Milliseconds before it expires; nil: never.
    public var expiresInMilliseconds: Int64?
}

/// One entry for `Storage.setMany(_:)`.
public struct Entry: Sendable {
    public var key: Data
    public var value: Data
    public var expiration: Expiration

    public init(key: some BackLiteKey, value: Data, expiration: Expiration = .default) {
        self.key = key.withKeyBytes { Data($0) }
        self.value = value
        self.expiration = expiration
    }
}

/// A persistent cache in one file. Usable from any number of threads and tasks at once;
/// the handle is closed when the last reference goes.
public final class Storage: @unchecked Sendable {
    /// The C handle, for calls this class does not cover. Valid while `self` lives.
    public let handle: OpaquePointer
    /// The cache this handle has open, as every handle of it in this process knows it.
    let identity: CacheIdentity
    /// Whether a `forEachChunk` walk holds a read snapshot (a cache file); in memory the
    /// value is copied out before the body runs, so nothing is held.
    private let walksHoldSnapshots: Bool

    /// Opens (or creates) the cache file at `path`; `":memory:"` gives a private
    /// in-memory cache. A file that is not a BackLite cache is left untouched and
    /// throws `BackLiteError.notACache`.
    public init(path: String, options: Options = Options()) throws {
        guard !path.utf8.contains(0) else {
            throw BackLiteError(code: .invalidArgument, message: "path contains a NUL byte")
        }
        let o = try options.makeC()
        defer { backlite_options_free(o) }
        var h: OpaquePointer?
        try cCall { backlite_storage_open(path, o, &h, $0) }
        let opened = h!
        handle = opened
        identity = CacheIdentity.of(path: path, handle: opened)
        walksHoldSnapshots = path != ":memory:"
    }

    /// Opens the cache file at `url`, which must be a file URL of this machine (no host,
    /// or "localhost") without a query or fragment: any other (`https:`, `redis:`,
    /// `file://server/...`, `file:///c.db?mode=ro`) throws `.invalidArgument` and
    /// nothing is created.
    public convenience init(url: URL, options: Options = Options()) throws {
        // `url.path` of "https://host/x/cache.db" is "/x/cache.db": a file the caller
        // never named.
        guard url.isFileURL else {
            throw BackLiteError(code: .invalidArgument, message: "not a file URL: \(url.scheme ?? "no scheme")")
        }
        // `url.path` drops the host, the query and the fragment too: a file of another
        // machine, or SQLite's "?mode=ro", would open a file here to write. Their text
        // is not repeated (a query may carry a secret).
        if let host = url.host, !host.isEmpty, host.lowercased() != "localhost" {
            throw BackLiteError(code: .invalidArgument,
                                message: "a file URL with a host other than localhost names a file of another machine")
        }
        if url.query != nil || url.fragment != nil {
            throw BackLiteError(code: .invalidArgument,
                                message: "a file URL with a \(url.query != nil ? "query" : "fragment") is no path: "
                                    + "nothing in it is read as an option")
        }
        try self.init(path: url.path, options: options)
    }

    /// A private in-memory cache.
    public static func inMemory(options: Options = Options()) throws -> Storage {
        try Storage(path: ":memory:", options: options)
    }

    deinit {
        backlite_storage_free(handle)
    }

    /// The value under `key`, or nil if there is no live entry.
    public func get(_ key: some BackLiteKey) throws -> Data? {
        try item(key)?.value
    }

    /// The value under `key` and the time it has left, or nil if there is no live entry.
    public func item(_ key: some BackLiteKey) throws -> CacheItem? {
        var buf = backlite_buf()
        var left: Int64 = 0
        var err: OpaquePointer?
        let r = withKey(key) { backlite_storage_get(handle, $0, $1, &buf, &left, &err) }
        if r == BACKLITE_RESULT_NOT_FOUND {
            backlite_error_free(err)  // NULL on a miss; freed all the same, so no miss can leak
            return nil
        }
        if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
        return CacheItem(value: takeData(&buf), expiresInMilliseconds: left < 0 ? nil : left)
    }

    /// Stores `value` under `key`, evicting by the policy to make room. Throws
    /// `.tooLarge` for a value longer than maxSize (and the older value is removed).
    public func set(_ key: some BackLiteKey, _ value: Data, expiration: Expiration = .default) throws {
        try withKey(key) { k, kl in
            try withBytes(value) { v, vl in
                try cCall { backlite_storage_set(handle, k, kl, v, vl, expiration.milliseconds, $0) }
            }
        }
    }

    /// Stores every entry in one transaction (all or nothing), then evicts down to maxSize.
    public func setMany(_ entries: [Entry]) throws {
        // One contiguous copy of every key and value, so that all stay pinned for the call.
        var blob = [UInt8]()
        blob.reserveCapacity(entries.reduce(0) { $0 + $1.key.count + $1.value.count })
        for e in entries {
            blob.append(contentsOf: e.key)
            blob.append(contentsOf: e.value)
        }
        try blob.withUnsafeBufferPointer { bytes in
            var offset = 0
            func next(_ count: Int) -> UnsafePointer<UInt8>? {
                defer { offset += count }
                return count == 0 ? nil : bytes.baseAddress! + offset
            }
            let raw = entries.map { e -> backlite_entry in
                let k = next(e.key.count)
                let v = next(e.value.count)
                return backlite_entry(key: k, key_len: e.key.count, value: v, value_len: e.value.count,
                                      expiration_ms: e.expiration.milliseconds)
            }
            try raw.withUnsafeBufferPointer { p in
                try cCall { backlite_storage_set_many(handle, p.baseAddress, p.count, $0) }
            }
        }
    }

    /// Stores every pair of `values` with one expiration, in one transaction. A failing
    /// pair is named by its key (`values["big"]: a value of ...`).
    public func setMany(_ values: [String: Data], expiration: Expiration = .default) throws {
        let pairs = Array(values)
        do {
            try setMany(pairs.map { Entry(key: $0.key, value: $0.value, expiration: expiration) })
        } catch let error as BackLiteError {
            throw error.namingEntry { pairs.indices.contains($0) ? pairs[$0].key : nil }
        }
    }

    /// Removes the entry under `key`; false if there was no live entry.
    @discardableResult
    public func delete(_ key: some BackLiteKey) throws -> Bool {
        var err: OpaquePointer?
        let r = withKey(key) { backlite_storage_delete(handle, $0, $1, &err) }
        if r == BACKLITE_RESULT_NOT_FOUND {
            backlite_error_free(err)  // NULL on a miss; freed all the same, so no miss can leak
            return false
        }
        if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
        return true
    }

    /// Whether `key` has a live entry. Not an access: no order or counter changes.
    public func contains(_ key: some BackLiteKey) throws -> Bool {
        var err: OpaquePointer?
        let r = withKey(key) { backlite_storage_contains(handle, $0, $1, &err) }
        if r == BACKLITE_RESULT_NOT_FOUND {
            backlite_error_free(err)  // NULL on a miss; freed all the same, so no miss can leak
            return false
        }
        if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
        return true
    }

    /// Calls `body` with every live key until it returns false. An error thrown by
    /// `body` stops the walk and is rethrown. No lock is held while `body` runs, so it
    /// may use this storage.
    public func forEachKey(_ body: (Data) throws -> Bool) throws {
        final class Visit {
            let body: (Data) throws -> Bool
            var error: (any Error)?
            init(_ body: @escaping (Data) throws -> Bool) { self.body = body }
        }
        try withoutActuallyEscaping(body) { body in
            let visit = Visit(body)
            var err: OpaquePointer?
            let r = withExtendedLifetime(visit) {
                backlite_storage_keys(handle, { userData, key, len in
                    let visit = Unmanaged<Visit>.fromOpaque(userData!).takeUnretainedValue()
                    let data = len == 0 ? Data() : Data(bytes: key!, count: len)
                    do {
                        return try visit.body(data) ? 0 : 1
                    } catch {
                        visit.error = error
                        return 1
                    }
                }, Unmanaged.passUnretained(visit).toOpaque(), &err)
            }
            if let error = visit.error {
                if r != BACKLITE_RESULT_OK { backlite_error_free(err) }
                throw error
            }
            if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
        }
    }

    /// Calls `body` with the value under `key` in `Data` chunks of at most 256 KiB, so
    /// that a value of any size is read in bounded memory. True when every chunk was
    /// handed over and the value's checksum matched; false on a miss, or when the value
    /// proved damaged after some chunks (drop them: the entry is removed). An error
    /// thrown by `body` stops the read and is rethrown. `body` may use this storage, but
    /// for `vacuum()`, which throws `.busy` there (see `vacuum()`).
    @discardableResult
    public func forEachChunk(of key: some BackLiteKey, _ body: (Data) throws -> Void) throws -> Bool {
        guard walksHoldSnapshots else { return try chunks(of: key, body) }
        return try ChunkWalks.shared.walk(identity) { try chunks(of: key, body) }
    }

    /// `forEachChunk` without the walk's bookkeeping.
    private func chunks(of key: some BackLiteKey, _ body: (Data) throws -> Void) throws -> Bool {
        return try withoutActuallyEscaping(body) { body in
            let visit = ChunkVisit(body)
            var err: OpaquePointer?
            let r = withExtendedLifetime(visit) {
                withKey(key) { k, kl in
                    backlite_storage_get_chunks(handle, k, kl, { userData, chunk, len in
                        let visit = Unmanaged<ChunkVisit>.fromOpaque(userData!).takeUnretainedValue()
                        do {
                            try visit.body(Data(bytes: chunk!, count: len))
                            return 0
                        } catch {
                            visit.error = error
                            return 1
                        }
                    }, Unmanaged.passUnretained(visit).toOpaque(), nil, &err)
                }
            }
            if let error = visit.error {
                if r != BACKLITE_RESULT_OK { backlite_error_free(err) }
                throw error
            }
            if r == BACKLITE_RESULT_NOT_FOUND {
                backlite_error_free(err)  // NULL on a miss; freed all the same
                return false
            }
            if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
            return true
        }
    }

    /// Every live key.
    public func keys() throws -> [Data] {
        var all = [Data]()
        try forEachKey { all.append($0); return true }
        return all
    }

    /// Removes every entry.
    public func clear() throws {
        try cCall { backlite_storage_clear(handle, $0) }
    }

    /// The file's counters (expired entries removed first) and this handle's activity.
    public func stats() throws -> Stats {
        var s = backlite_stats()
        try cCall { backlite_storage_stats(handle, &s, $0) }
        return Stats(count: s.count, totalSize: s.total_size, maxSize: s.max_size, hits: s.hits,
                     misses: s.misses, evictions: s.evictions, expirations: s.expirations)
    }

    /// This handle's remote tier activity.
    public func remoteStats() throws -> RemoteStats {
        var s = backlite_remote_stats()
        try cCall { backlite_storage_remote_stats(handle, &s, $0) }
        return RemoteStats(hits: s.hits, misses: s.misses, writes: s.writes, errors: s.errors,
                           skipped: s.skipped, connected: s.connected != 0)
    }

    /// Verifies the whole file (O(n), for maintenance); with `repair`, fixes what it can.
    public func check(repair: Bool = false) throws -> CheckReport {
        var r = backlite_check_report()
        try cCall { backlite_storage_check(handle, repair ? 1 : 0, &r, $0) }
        return CheckReport(healthy: r.healthy != 0, integrityOK: r.integrity_ok != 0,
                           repaired: r.repaired != 0, entries: r.entries, damaged: r.damaged,
                           orphanValues: r.orphan_values, recordedCount: r.recorded_count,
                           recordedTotalSize: r.recorded_total_size, actualCount: r.actual_count,
                           actualTotalSize: r.actual_total_size)
    }

    /// Gives the space of deleted entries back to the file system, and truncates the
    /// write-ahead log. Throws `.busy` when readers kept the log from being truncated
    /// (after waiting for them up to the busy timeout; the file is rebuilt all the same):
    /// readers of other threads and processes, or a `ValueReader` of a large value this
    /// thread holds open. Called inside `forEachChunk` of this cache file (through this
    /// storage or another of the same file), whose body holds such a reader until the
    /// walk returns, it throws `.busy` at once and does nothing: vacuum after the walk.
    public func vacuum() throws {
        if walksHoldSnapshots, ChunkWalks.shared.onThisThread(identity) {
            throw BackLiteError(
                code: .busy,
                message: "vacuum() inside forEachChunk(of:) of this cache file: the walk reads from a snapshot "
                    + "that keeps the write-ahead log from being truncated until it returns; nothing was "
                    + "done (vacuum after the walk)")
        }
        try cCall { backlite_storage_vacuum(handle, $0) }
    }
}

/// What the chunk visitor of `forEachChunk` reaches through its user data (a type of its
/// own: a generic function cannot nest one).
private final class ChunkVisit {
    let body: (Data) throws -> Void
    var error: (any Error)?
    init(_ body: @escaping (Data) throws -> Void) { self.body = body }
}
