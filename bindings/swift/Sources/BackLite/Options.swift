import CBackLite

/// The seed's eviction policies; the raw value is the seed's name.
public enum EvictionPolicy: String, CaseIterable, Sendable {
    case leastRecentlyUsed = "least-recently-used"
    case leastFrequentlyUsed = "least-frequently-used"
    case mostRecentlyUsed = "most-recently-used"
    case firstInFirstOut = "first-in-first-out"
    case lastInFirstOut = "last-in-first-out"

    var cValue: backlite_eviction_policy {
        switch self {
        case .leastRecentlyUsed: return BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
        case .leastFrequentlyUsed: return BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
        case .mostRecentlyUsed: return BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
        case .firstInFirstOut: return BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
        case .lastInFirstOut: return BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT
        }
    }
}

/// How a remote tier (`Options.remote`) is used.
public enum RemoteMode: Sendable {
    /// Reads through; writes reach the remote before the call returns (the default).
    case readWrite
    /// Reads through; never writes to the remote.
    case readOnly
    /// Reads through; writes are queued and sent by a background thread.
    case writeBehind

    var cValue: backlite_remote_mode {
        switch self {
        case .readWrite: return BACKLITE_REMOTE_MODE_READ_WRITE
        case .readOnly: return BACKLITE_REMOTE_MODE_READ_ONLY
        case .writeBehind: return BACKLITE_REMOTE_MODE_WRITE_BEHIND
        }
    }
}

/// Which values `Options.fileThreshold` keeps in files of their own.
public enum FileThreshold: Hashable, Sendable {
    /// Values of at least this many bytes (1 ... Int64.max).
    case bytes(UInt64)
    /// Every value stays in the database file.
    case never

    var cValue: Int64 {
        switch self {
        // Out of range: 0, which the library refuses as invalid.
        case .bytes(let n): return n <= UInt64(Int64.max) ? Int64(n) : 0
        case .never: return Int64(BACKLITE_FILE_THRESHOLD_NEVER)
        }
    }
}

/// When an entry expires.
public struct Expiration: Hashable, Sendable {
    let milliseconds: Int64

    /// The storage's default (`Options.defaultExpiration`).
    public static let `default` = Expiration(milliseconds: Int64(BACKLITE_EXPIRATION_DEFAULT))
    /// Never.
    public static let never = Expiration(milliseconds: Int64(BACKLITE_EXPIRATION_NEVER))

    /// After `ms` milliseconds (0: already expired, so nothing is stored).
    public static func milliseconds(_ ms: Int64) -> Expiration {
        Expiration(milliseconds: max(0, ms))
    }

    /// After `s` seconds (0 or less: already expired, so nothing is stored).
    public static func seconds(_ s: Int64) -> Expiration {
        // An overflow saturates toward the sign: a huge negative is already expired.
        let (ms, overflow) = s.multipliedReportingOverflow(by: 1000)
        return .milliseconds(overflow ? (s < 0 ? 0 : Int64.max) : ms)
    }

    /// After `duration`, rounded up to whole milliseconds (as the other bindings do: a
    /// positive duration never becomes 0, "already expired"); zero or negative: already
    /// expired, so nothing is stored.
    @available(macOS 13, iOS 16, tvOS 16, watchOS 9, *)
    public static func after(_ duration: Duration) -> Expiration {
        .milliseconds(duration.millisecondsRoundedUp)
    }
}

@available(macOS 13, iOS 16, tvOS 16, watchOS 9, *)
extension Duration {
    /// Whole milliseconds, rounded up, saturating at the ends of Int64.
    var millisecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        // components truncate toward zero: attoseconds has the sign of the duration.
        let attosPerMs: Int64 = 1_000_000_000_000_000
        var part = attoseconds / attosPerMs
        if attoseconds % attosPerMs > 0 { part += 1 }
        let (sum, sumOverflow) = ms.addingReportingOverflow(part)
        return sumOverflow ? (part < 0 ? Int64.min : Int64.max) : sum
    }
}

/// How `Storage` opens a file. `nil` fields keep the library's defaults (1 GiB,
/// least-recently-used, never expire, 5000 ms busy timeout, no version tag).
public struct Options: Sendable {
    /// The bound on the sum of value lengths, in bytes (1 ... Int64.max).
    public var maxSize: UInt64?
    public var evictionPolicy: EvictionPolicy?
    /// The expiration of entries set with `.default`: `.never` or `.milliseconds(n)`.
    public var defaultExpiration: Expiration?
    /// How long to wait for a lock held by another connection or process.
    public var busyTimeoutMilliseconds: UInt32?
    /// How long the memoisers' claim on a key lasts between two renewals by the library
    /// (default 30 000): how long a holder that stops renewing blocks its key.
    public var leaseMilliseconds: Int64?
    /// Values at or above the threshold are kept in files of their own in the folder
    /// "<path>.values" beside the cache file, where large values read and write at the
    /// speed of files. `nil`: the library's default (backlite_options_set_file_threshold).
    public var fileThreshold: FileThreshold?
    /// When the file was last opened with another tag, every entry is dropped on open.
    public var versionTag: String?
    /// A shared remote tier on Redis / Valkey: "redis://[user[:password]@]host[:port][/db]",
    /// "rediss://...", "redis+unix:///path", "redis+cluster://h:p,h:p", "rediss+cluster://...".
    public var remote: String?
    /// The prefix of every remote key (default "backlite").
    public var remoteNamespace: String?
    /// The bound on every remote round trip, connect included (default 250 ms; > 0).
    public var remoteTimeoutMilliseconds: UInt32?
    public var remoteMode: RemoteMode?

    public init(
        maxSize: UInt64? = nil,
        evictionPolicy: EvictionPolicy? = nil,
        defaultExpiration: Expiration? = nil,
        busyTimeoutMilliseconds: UInt32? = nil,
        leaseMilliseconds: Int64? = nil,
        fileThreshold: FileThreshold? = nil,
        versionTag: String? = nil,
        remote: String? = nil,
        remoteNamespace: String? = nil,
        remoteTimeoutMilliseconds: UInt32? = nil,
        remoteMode: RemoteMode? = nil
    ) {
        self.maxSize = maxSize
        self.evictionPolicy = evictionPolicy
        self.defaultExpiration = defaultExpiration
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.leaseMilliseconds = leaseMilliseconds
        self.fileThreshold = fileThreshold
        self.versionTag = versionTag
        self.remote = remote
        self.remoteNamespace = remoteNamespace
        self.remoteTimeoutMilliseconds = remoteTimeoutMilliseconds
        self.remoteMode = remoteMode
    }

    /// A `backlite_options` for these options; the caller frees it.
    func makeC() throws -> OpaquePointer {
        guard let o = backlite_options_new() else {
            throw BackLiteError(code: .internal, message: "out of memory")
        }
        do {
            func set(_ name: String, _ result: backlite_result) throws {
                if result != BACKLITE_RESULT_OK {
                    throw BackLiteError(code: .init(rawValue: result), message: "invalid option \(name)")
                }
            }
            if let v = maxSize { try set("maxSize", backlite_options_set_max_size(o, v)) }
            if let v = evictionPolicy { try set("evictionPolicy", backlite_options_set_eviction_policy(o, v.cValue)) }
            if let v = defaultExpiration {
                try set("defaultExpiration", backlite_options_set_default_expiration_ms(o, v.milliseconds))
            }
            if let v = busyTimeoutMilliseconds {
                try set("busyTimeoutMilliseconds", backlite_options_set_busy_timeout_ms(o, v))
            }
            if let v = leaseMilliseconds {
                try set("leaseMilliseconds", backlite_options_set_lease_ms(o, v))
            }
            if let v = fileThreshold {
                try set("fileThreshold", backlite_options_set_file_threshold(o, v.cValue))
            }
            if let v = versionTag {
                guard !v.utf8.contains(0) else {
                    throw BackLiteError(code: .invalidArgument, message: "invalid option versionTag: contains a NUL byte")
                }
                try set("versionTag", backlite_options_set_version_tag(o, v))
            }
            if let v = remote {
                guard !v.utf8.contains(0) else {
                    throw BackLiteError(code: .invalidArgument, message: "invalid option remote: contains a NUL byte")
                }
                try set("remote", backlite_options_set_remote(o, v))
            }
            if let v = remoteNamespace {
                guard !v.utf8.contains(0) else {
                    throw BackLiteError(code: .invalidArgument, message: "invalid option remoteNamespace: contains a NUL byte")
                }
                try set("remoteNamespace", backlite_options_set_remote_namespace(o, v))
            }
            if let v = remoteTimeoutMilliseconds {
                try set("remoteTimeoutMilliseconds", backlite_options_set_remote_timeout_ms(o, v))
            }
            if let v = remoteMode { try set("remoteMode", backlite_options_set_remote_mode(o, v.cValue)) }
        } catch {
            backlite_options_free(o)
            throw error
        }
        return o
    }
}

/// Printed, dumped or logged, options show their remote URL with its password (and any
/// query, which may carry one) masked as `***`, as the library's messages do: the
/// default description of a struct would print it whole.
extension Options: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        let fields = customMirror.children.map { child in
            "\(child.label!): " + ((child.value as? String).map { String(reflecting: $0) } ?? "\(child.value)")
        }
        return "Options(\(fields.joined(separator: ", ")))"
    }

    public var debugDescription: String { description }

    /// The fields that are set, the remote URL masked.
    public var customMirror: Mirror {
        var children: [(label: String?, value: Any)] = []
        func add(_ label: String, _ value: Any?) {
            if let value { children.append((label, value)) }
        }
        add("maxSize", maxSize)
        add("evictionPolicy", evictionPolicy)
        add("defaultExpiration", defaultExpiration)
        add("busyTimeoutMilliseconds", busyTimeoutMilliseconds)
        add("leaseMilliseconds", leaseMilliseconds)
        add("fileThreshold", fileThreshold)
        add("versionTag", versionTag)
        add("remote", remote.map(MaskedURL.of))
        add("remoteNamespace", remoteNamespace)
        add("remoteTimeoutMilliseconds", remoteTimeoutMilliseconds)
        add("remoteMode", remoteMode)
        return Mirror(self, children: children, displayStyle: .struct)
    }
}

/// The file's counters and this handle's activity.
public struct Stats: Hashable, Sendable {
    /// Live entries in the file.
    public var count: UInt64
    /// Sum of value lengths in the file (what maxSize bounds).
    public var totalSize: UInt64
    public var maxSize: UInt64
    /// This handle's lookups that found a live entry.
    public var hits: UInt64
    /// This handle's lookups that did not.
    public var misses: UInt64
    /// Entries this handle evicted for size.
    public var evictions: UInt64
    /// Expired entries this handle removed.
    public var expirations: UInt64
}

/// This handle's remote tier activity (all zero without a remote).
public struct RemoteStats: Hashable, Sendable {
    /// Local misses the remote answered.
    public var hits: UInt64
    /// Local misses it did not answer.
    public var misses: UInt64
    /// Writes it acknowledged.
    public var writes: UInt64
    /// Round trips that failed (refused, timed out, garbage).
    public var errors: UInt64
    /// Calls not sent while it was backed off.
    public var skipped: UInt64
    /// The last round trip succeeded.
    public var connected: Bool
}

/// What `Storage.check(repair:)` found and, with repair, fixed.
public struct CheckReport: Hashable, Sendable {
    public var healthy: Bool
    public var integrityOK: Bool
    public var repaired: Bool
    public var entries: UInt64
    public var damaged: UInt64
    public var orphanValues: UInt64
    public var recordedCount: UInt64
    public var recordedTotalSize: UInt64
    public var actualCount: UInt64
    public var actualTotalSize: UInt64
}
