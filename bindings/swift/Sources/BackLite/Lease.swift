import CBackLite
import Foundation

/// The answer of `Storage.tryAcquire(_:leaseMilliseconds:)`.
public enum Acquisition: Sendable {
    /// A hit: the stored value.
    case hit(Data)
    /// A miss, and the key is ours to compute: `fulfill` or `abandon` the lease.
    case lease(Lease)
    /// Another live owner is computing the key: try again later.
    case busy
}

/// The right to compute one key (the two-phase stampede protection, for event loops and
/// async code). Release it with `fulfill` or `abandon`; one dropped without either is
/// abandoned. It stays valid even after its `Storage` is gone.
public final class Lease: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let lock = NSLock()

    init(_ handle: OpaquePointer) { self.handle = handle }

    deinit { backlite_lease_abandon(handle) }

    /// Moves the deadline to `milliseconds` from now. Throws `.leaseLost` if another
    /// owner took the key over.
    public func extend(milliseconds: Int64) throws {
        lock.lock()
        defer { lock.unlock() }
        try cCall { backlite_lease_extend(handle, milliseconds, $0) }
    }

    /// Stores `value` under the key and releases the lease, whatever the result.
    /// Throws `.leaseLost` if another owner took the key over (nothing was stored).
    public func fulfill(_ value: Data, expiration: Expiration = .default) throws {
        lock.lock()
        let h = handle
        handle = nil
        lock.unlock()
        guard let h else { throw BackLiteError(code: .invalidArgument, message: "the lease was already released") }
        try withBytes(value) { v, vl in
            try cCall { backlite_lease_fulfill(h, v, vl, expiration.milliseconds, $0) }
        }
    }

    /// Releases the lease without storing anything; another caller may then take the key.
    /// Does nothing once the lease is released.
    public func abandon() {
        lock.lock()
        let h = handle
        handle = nil
        lock.unlock()
        backlite_lease_abandon(h)
    }

    /// Runs `body`, extending the lease every half `milliseconds` meanwhile.
    func keptAlive<T>(every milliseconds: Int64, while body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                let interval = UInt64(max(1, milliseconds / 2)) * 1_000_000
                while true {
                    try await Task.sleep(nanoseconds: interval)
                    do { try extend(milliseconds: milliseconds) } catch { return }
                }
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}

extension Storage {
    /// Looks `key` up without ever waiting for another owner: a hit, a lease to compute
    /// the key (held for `leaseMilliseconds`), or busy.
    public func tryAcquire(_ key: some BackLiteKey, leaseMilliseconds: Int64 = 30_000) throws -> Acquisition {
        var buf = backlite_buf()
        var lease: OpaquePointer?
        var err: OpaquePointer?
        let r = withKey(key) { backlite_lease_try_acquire(handle, $0, $1, leaseMilliseconds, &buf, &lease, &err) }
        switch r {
        case BACKLITE_RESULT_OK: return .hit(takeData(&buf))
        case BACKLITE_RESULT_NOT_FOUND: return .lease(Lease(lease!))
        case BACKLITE_RESULT_BUSY:
            backlite_error_free(err)
            return .busy
        default: throw makeError(r, err)
        }
    }
}
