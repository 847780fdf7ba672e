import CBackLite
import Foundation

/// The state a compute callback reaches through `user_data`.
private final class ComputeBox {
    let compute: () throws -> Data
    var error: (any Error)?
    var sinkFailure: backlite_result = BACKLITE_RESULT_OK
    init(_ compute: @escaping () throws -> Data) { self.compute = compute }
}

/// Calls the Swift compute and hands its value to the sink. A thrown error is kept for
/// the caller and reported to C as a failure: nothing unwinds through the library.
private let computeTrampoline: backlite_compute_fn = { userData, sink in
    let box = Unmanaged<ComputeBox>.fromOpaque(userData!).takeUnretainedValue()
    do {
        let value = try box.compute()
        let r = withBytes(value) { backlite_sink_write(sink, $0, $1) }
        if r != BACKLITE_RESULT_OK {
            box.sinkFailure = r
            return 1
        }
        return 0
    } catch {
        box.error = error
        return 1
    }
}

private final class LockBox {
    let lock: any NSLocking
    init(_ lock: any NSLocking) { self.lock = lock }
}

extension Storage {
    /// Calls a C memoising function with `compute` behind `user_data`, and turns its
    /// outcome into the value or a thrown error (the compute's own error first).
    private func memoise(
        _ compute: () throws -> Data,
        _ call: (backlite_compute_fn, UnsafeMutableRawPointer, inout backlite_buf, UnsafeMutablePointer<OpaquePointer?>) -> backlite_result
    ) throws -> Data {
        try withoutActuallyEscaping(compute) { compute in
            let box = ComputeBox(compute)
            var buf = backlite_buf()
            var err: OpaquePointer?
            let r = withExtendedLifetime(box) {
                call(computeTrampoline, Unmanaged.passUnretained(box).toOpaque(), &buf, &err)
            }
            if r == BACKLITE_RESULT_OK { return takeData(&buf) }
            if let error = box.error {
                backlite_error_free(err)
                throw error
            }
            if box.sinkFailure != BACKLITE_RESULT_OK {
                backlite_error_free(err)
                throw BackLiteError(code: .init(rawValue: box.sinkFailure), message: "backlite_sink_write failed")
            }
            throw makeError(r, err)
        }
    }

    /// The value under `key`; on a miss, `compute()` makes it and it is stored with
    /// `expiration`. With a `barrier` (an `NSLock`, say), callers sharing it compute a
    /// key once: the key is looked up again once the lock is held. An error thrown by
    /// `compute` is rethrown, with nothing stored. A value too large to store is still
    /// returned.
    ///
    /// In async code, `cached(key:expiration:compute:)` resolves to the async memoiser
    /// (which never blocks a thread); pass `barrier:` to call this one there.
    @_disfavoredOverload
    public func cached(
        key: some BackLiteKey,
        expiration: Expiration = .default,
        barrier: (any NSLocking)? = nil,
        compute: () throws -> Data
    ) throws -> Data {
        let lockBox = barrier.map(LockBox.init)
        return try withExtendedLifetime(lockBox) {
            var b = backlite_barrier(
                user_data: lockBox.map { Unmanaged.passUnretained($0).toOpaque() },
                lock: { userData in
                    Unmanaged<LockBox>.fromOpaque(userData!).takeUnretainedValue().lock.lock()
                    return 0
                },
                unlock: { userData in
                    Unmanaged<LockBox>.fromOpaque(userData!).takeUnretainedValue().lock.unlock()
                })
            return try withKey(key) { k, kl in
                try memoise(compute) { fn, userData, buf, err in
                    if lockBox == nil {
                        return backlite_cached_call(handle, k, kl, fn, userData, nil, expiration.milliseconds, &buf, err)
                    }
                    return backlite_cached_call(handle, k, kl, fn, userData, &b, expiration.milliseconds, &buf, err)
                }
            }
        }
    }

    /// Like `cached(key:expiration:barrier:compute:)`, but at most one caller computes a
    /// key at a time across every thread and process sharing the file; the others wait
    /// for its value (blocking their thread) for up to `waitTimeoutMilliseconds`, then
    /// throw `.leaseHeld` (with the holder's `leaseTimeLeftMilliseconds`). The library
    /// renews the computing caller's lease while `compute` runs, so a compute of any
    /// length is computed once. From async code use `cached(key:expiration:compute:)`,
    /// which waits without blocking a thread. A negative `waitTimeoutMilliseconds` throws
    /// `.invalidArgument` (it is no "wait forever"), with nothing computed. Called for the
    /// key its own caller is computing, from inside that compute (a recursion with the
    /// same arguments, in the same thread or task, through any `Storage` of the same
    /// cache file), it computes at once and stores nothing (the outer call stores its
    /// value), where waiting would wait for itself.
    public func cachedExclusive(
        key: some BackLiteKey,
        expiration: Expiration = .default,
        waitTimeoutMilliseconds: Int64 = 60_000,
        compute: () throws -> Data
    ) throws -> Data {
        guard waitTimeoutMilliseconds >= 0 else {
            throw BackLiteError(code: .invalidArgument,
                                message: "waitTimeoutMilliseconds must be >= 0, got \(waitTimeoutMilliseconds)")
        }
        let mine = computingKey(key)
        if Computing.isComputing(mine) { return try compute() }
        let run = Computing.Run()
        return try Computing.$keys.withValue(Computing.adding(mine, run)) {
            try withKey(key) { k, kl in
                try memoise({ defer { run.end() }; return try compute() }) { fn, userData, buf, err in
                    backlite_cached_call_exclusive(handle, k, kl, fn, userData, expiration.milliseconds,
                                                   waitTimeoutMilliseconds, &buf, err)
                }
            }
        }
    }

    /// The async memoiser: the value under `key`, computed by `compute()` on a miss, at
    /// most once at a time across every task, thread and process sharing the file. The
    /// waiting and the lease are the library's (`backlite_lease_step`): while another
    /// owner computes the key, this task sleeps for the pause the library gives (1 ms
    /// doubling to 50 ms) and never blocks a thread; the library renews this caller's
    /// lease while `compute` runs (`Options.leaseMilliseconds` sets its length), so a
    /// compute of any length is computed once. An error thrown by `compute` (or a
    /// cancellation) releases the key for the next caller and is rethrown. A cancelled
    /// task gets a value already stored (a hit); it throws `CancellationError` instead
    /// of waiting for another owner or starting `compute`. If the
    /// computed value cannot be stored because it is too large, or because another owner
    /// took the key over meanwhile, it is still returned. Called for the key being
    /// computed from inside its own compute (or a task that compute starts), through any
    /// `Storage` of the same cache file, it computes at once and stores nothing (the
    /// outer call stores its value): waiting would wait for itself for ever.
    ///
    /// It runs in the caller's isolation (`#isolation`): from a `@MainActor` type or an
    /// actor, `compute` may use the actor's state, and Swift 6 code compiles.
    #if compiler(>=6.0)
    public func cached(
        key: some BackLiteKey,
        expiration: Expiration = .default,
        isolation: isolated (any Actor)? = #isolation,
        compute: () async throws -> Data
    ) async throws -> Data {
        try await cachedAsync(key: key, expiration: expiration, compute: compute)
    }
    #else
    public func cached(
        key: some BackLiteKey,
        expiration: Expiration = .default,
        compute: () async throws -> Data
    ) async throws -> Data {
        try await cachedAsync(key: key, expiration: expiration, compute: compute)
    }
    #endif

    /// The async memoiser's loop. `compute`, formed in the caller's isolation, runs
    /// there: an async closure switches to its actor.
    private func cachedAsync(
        key: some BackLiteKey,
        expiration: Expiration,
        compute: () async throws -> Data
    ) async throws -> Data {
        let mine = computingKey(key)
        if Computing.isComputing(mine) { return try await compute() }
        var attempt: UInt32 = 0
        while true {
            // A cancelled task still gets a value that is there at once: cancellation
            // stops its waiting and computing, it does not throw away a stored answer.
            let step = try leaseStep(key, attempt: attempt)
            attempt &+= 1
            switch step {
            case .hit(let value):
                return value
            case .wait(let nanoseconds):
                try Task.checkCancellation()
                try await Task.sleep(nanoseconds: nanoseconds)
            case .lease(let lease):
                if Task.isCancelled {
                    lease.abandon()
                    throw CancellationError()
                }
                let value: Data
                do {
                    let run = Computing.Run()
                    defer { run.end() }
                    value = try await Computing.$keys.withValue(Computing.adding(mine, run)) {
                        try await compute()
                    }
                } catch {
                    lease.abandon()
                    throw error
                }
                do {
                    try lease.fulfill(value, expiration: expiration)
                } catch let error as BackLiteError where error.code == .leaseLost || error.code == .tooLarge {
                    // Not stored, but the value is this caller's answer all the same.
                }
                return value
            }
        }
    }
}
