import CBackLite
import Foundation

/// The answer of `Storage.tryAcquire(_:leaseMilliseconds:)`.
public enum Acquisition: Sendable {
    /// A hit: the stored value.
    case hit(Data)
    /// A miss, and the key is ours to compute: `fulfill` or `abandon` the lease.
    case lease(Lease)
    /// Another live owner is computing the key: try again later. Its lease's time left.
    case held(timeLeftMilliseconds: Int64)
}

/// The right to compute one key (the two-phase stampede protection, for event loops and
/// async code). Release it with `fulfill` or `abandon`; one dropped without either is
/// abandoned. It stays valid even after its `Storage` is gone.
public final class Lease: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let lock = NSLock()

    init(_ handle: OpaquePointer) { self.handle = handle }

    deinit { backlite_lease_abandon(handle) }

    /// Moves the deadline to `milliseconds` (> 0, else `.invalidArgument`) from now.
    /// Throws `.leaseLost` if another owner took the key over, and `.nullParameter` once
    /// the lease is released (as `fulfill` does).
    public func extend(milliseconds: Int64) throws {
        lock.lock()
        defer { lock.unlock() }
        // A released lease has no handle: the C call's code, with a message that names
        // the caller's mistake rather than the binding's NULL.
        guard let h = handle else { throw releasedError() }
        try cCall { backlite_lease_extend(h, milliseconds, $0) }
    }

    /// Stores `value` under the key and releases the lease, whatever the result.
    /// Throws `.leaseLost` if another owner took the key over (nothing was stored), and
    /// `.nullParameter` once the lease is released.
    public func fulfill(_ value: Data, expiration: Expiration = .default) throws {
        lock.lock()
        let h = handle
        handle = nil
        lock.unlock()
        guard let h else { throw releasedError() }
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

    /// A handle already given back: `.nullParameter`, as for a closed `ValueReader`, and
    /// as the C++, Go and Zig bindings say it of both.
    private func releasedError() -> BackLiteError {
        BackLiteError(code: .nullParameter, message: "the lease was already released")
    }
}

extension Storage {
    /// Looks `key` up without ever waiting for another owner: a hit, a lease to compute
    /// the key (held for `leaseMilliseconds`, renewed only by `extend`), or held by
    /// another owner.
    public func tryAcquire(_ key: some BackLiteKey, leaseMilliseconds: Int64 = 30_000) throws -> Acquisition {
        var buf = backlite_buf()
        var lease: OpaquePointer?
        var err: OpaquePointer?
        let r = withKey(key) { backlite_lease_try_acquire(handle, $0, $1, leaseMilliseconds, &buf, &lease, &err) }
        switch r {
        case BACKLITE_RESULT_OK: return .hit(takeData(&buf))
        case BACKLITE_RESULT_NOT_FOUND: return .lease(Lease(lease!))
        case BACKLITE_RESULT_LEASE_HELD:
            defer { backlite_error_free(err) }
            return .held(timeLeftMilliseconds: backlite_error_lease_time_left_ms(err))
        default: throw makeError(r, err)
        }
    }

    /// One step of the library's wait for `key` (`backlite_lease_step`): a hit, the
    /// key's lease (renewed by the library until it is fulfilled or abandoned), or the
    /// pause in nanoseconds before the next step (`attempt` + 1).
    func leaseStep(_ key: some BackLiteKey, attempt: UInt32) throws -> LeaseStep {
        var buf = backlite_buf()
        var lease: OpaquePointer?
        var err: OpaquePointer?
        let r = withKey(key) { backlite_lease_step(handle, $0, $1, attempt, &buf, &lease, &err) }
        switch r {
        case BACKLITE_RESULT_OK: return .hit(takeData(&buf))
        case BACKLITE_RESULT_NOT_FOUND: return .lease(Lease(lease!))
        case BACKLITE_RESULT_LEASE_HELD:
            defer { backlite_error_free(err) }
            return .wait(nanoseconds: UInt64(max(0, backlite_error_retry_in_ms(err))) * 1_000_000)
        default: throw makeError(r, err)
        }
    }
}

/// The answer of `Storage.leaseStep(_:attempt:)`.
enum LeaseStep {
    case hit(Data)
    case lease(Lease)
    case wait(nanoseconds: UInt64)
}
