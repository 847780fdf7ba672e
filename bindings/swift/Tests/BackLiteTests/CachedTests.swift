import BackLite
import Foundation
import XCTest

/// A thread-safe call counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

struct ComputeBroke: Error, Equatable {}

final class CachedTests: XCTestCase {
    // MARK: the blocking memoisers

    func testCachedComputesOnceThenAnswersFromTheCache() throws {
        let cache = try Storage.inMemory()
        var calls = 0
        for _ in 0..<3 {
            let value = try cache.cached(key: "memo") {
                calls += 1
                return bytes("computed")
            }
            XCTAssertEqual(value, bytes("computed"))
        }
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(try cache.get("memo"), bytes("computed"))
    }

    func testCachedStoresWithTheExpirationGiven() throws {
        let cache = try Storage.inMemory()
        _ = try cache.cached(key: "never", expiration: .never) { bytes("v") }
        XCTAssertNil(try cache.item("never")?.expiresInMilliseconds)
        _ = try cache.cached(key: "gone", expiration: .milliseconds(0)) { bytes("v") }
        XCTAssertFalse(try cache.contains("gone"))
    }

    func testAThrowingComputeIsRethrownAndStoresNothing() throws {
        let cache = try Storage.inMemory()
        var calls = 0
        for _ in 0..<2 {
            XCTAssertThrowsError(try cache.cached(key: "k") { () throws -> Data in
                calls += 1
                throw ComputeBroke()
            }) { error in
                XCTAssertEqual(error as? ComputeBroke, ComputeBroke())
            }
        }
        XCTAssertEqual(calls, 2) // nothing was cached, so it computed again
        XCTAssertThrowsError(try cache.cachedExclusive(key: "k") { throw ComputeBroke() }) { error in
            XCTAssertTrue(error is ComputeBroke)
        }
        XCTAssertFalse(try cache.contains("k"))
    }

    func testAComputedValueTooLargeToStoreIsStillReturned() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 3))
        XCTAssertEqual(try cache.cached(key: "k") { bytes("much too long") }, bytes("much too long"))
        XCTAssertFalse(try cache.contains("k"))
    }

    func testCachedWithALockBarrierComputesOnceAcrossThreads() throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("barrier.db")
        let cache = try Storage(url: url)
        let lock = NSLock()
        let calls = Counter()
        let results = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let value = try? cache.cached(key: "shared", barrier: lock) {
                calls.increment()
                Thread.sleep(forTimeInterval: 0.02)
                return bytes("slow")
            }
            if value == bytes("slow") { results.increment() }
        }
        XCTAssertEqual(results.value, 4)
        XCTAssertEqual(calls.value, 1)
    }

    func testCachedExclusiveComputesOnceAcrossThreadsWithTheirOwnHandles() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("exclusive.db").path
        let calls = Counter()
        let results = Counter()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            guard let cache = try? Storage(path: path) else { return }
            let value = try? cache.cachedExclusive(key: "report", waitTimeoutMilliseconds: 10_000) {
                calls.increment()
                Thread.sleep(forTimeInterval: 0.05)
                return bytes("once")
            }
            if value == bytes("once") { results.increment() }
        }
        XCTAssertEqual(results.value, 4)
        XCTAssertEqual(calls.value, 1)
    }

    func testCachedExclusiveThrowsLeaseHeldWithTheTimeLeftWhileAnotherOwnerHoldsTheKey() throws {
        let cache = try Storage.inMemory()
        guard case .lease(let lease) = try cache.tryAcquire("k") else { return XCTFail("no lease") }
        defer { lease.abandon() }
        var calls = 0
        XCTAssertThrowsError(try cache.cachedExclusive(key: "k", waitTimeoutMilliseconds: 0) {
            calls += 1
            return bytes("v")
        }) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .leaseHeld)
            let left = (error as? BackLiteError)?.leaseTimeLeftMilliseconds ?? -1
            XCTAssert(left > 0 && left <= 30_000, "time left \(left)")
        }
        XCTAssertEqual(calls, 0)
    }

    /// A negative wait is a mistake (not "wait forever", not "do not wait"): it throws
    /// .invalidArgument naming the parameter, computes nothing and stores nothing.
    func testCachedExclusiveRefusesANegativeWaitTimeout() throws {
        let cache = try Storage.inMemory()
        var calls = 0
        for wait in [Int64(-1), Int64.min] {
            XCTAssertThrowsError(try cache.cachedExclusive(key: "k", waitTimeoutMilliseconds: wait) {
                calls += 1
                return bytes("v")
            }) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
                XCTAssertTrue((error as? BackLiteError)?.message.contains("waitTimeoutMilliseconds") ?? false,
                              "\(error)")
            }
        }
        XCTAssertEqual(calls, 0)
        XCTAssertFalse(try cache.contains("k"))
        XCTAssertEqual(try cache.cachedExclusive(key: "k", waitTimeoutMilliseconds: 0) { bytes("v") }, bytes("v"))
    }

    /// A memoised call of the key being computed, from inside its own compute (a
    /// recursion with the same arguments): it waited for the key's lease, its own
    /// caller's, for its whole wait, then threw .leaseHeld. It computes at once and
    /// stores nothing; the outer call stores its own value. Other keys are memoised.
    func testACachedExclusiveCallOfItsOwnKeyInsideItsComputeComputesAtOnce() throws {
        let cache = try Storage.inMemory()
        var outer = 0
        var inner = 0
        let value = try cache.cachedExclusive(key: "k", expiration: .never, waitTimeoutMilliseconds: 2_000) {
            outer += 1
            let nested = try cache.cachedExclusive(key: "k", waitTimeoutMilliseconds: 2_000) {
                inner += 1
                return bytes("inner")
            }
            XCTAssertEqual(nested, bytes("inner"))
            XCTAssertFalse(try cache.contains("k"))
            XCTAssertEqual(try cache.cachedExclusive(key: "other") { bytes("o") }, bytes("o"))
            return bytes("outer")
        }
        XCTAssertEqual(value, bytes("outer"))
        XCTAssertEqual([outer, inner], [1, 1])
        XCTAssertEqual(try cache.get("k"), bytes("outer"))
        XCTAssertEqual(try cache.get("other"), bytes("o"))
        // Once the outer call is over, the key is an ordinary hit again.
        XCTAssertEqual(try cache.cachedExclusive(key: "k") { bytes("again") }, bytes("outer"))
    }

    // MARK: the two-phase lease API

    func testTryAcquireGivesALeaseThenHeldThenAHit() throws {
        let cache = try Storage.inMemory()
        guard case .lease(let lease) = try cache.tryAcquire("k") else { return XCTFail("no lease") }
        guard case .held(let left) = try cache.tryAcquire("k") else { return XCTFail("not held") }
        XCTAssert(left > 0 && left <= 30_000)
        try lease.extend(milliseconds: 60_000)
        try lease.fulfill(bytes("value"), expiration: .never)
        lease.abandon() // does nothing once fulfilled
        guard case .hit(let value) = try cache.tryAcquire("k") else { return XCTFail("no hit") }
        XCTAssertEqual(value, bytes("value"))
        XCTAssertThrowsError(try lease.fulfill(bytes("again"))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .nullParameter)
        }
        XCTAssertThrowsError(try lease.extend(milliseconds: 1000)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .nullParameter)
            XCTAssertEqual((error as? BackLiteError)?.message, "the lease was already released")
        }
    }

    /// A lease used after its release and a reader read after its close are the same
    /// mistake, a handle already given back, and throw the same code, .nullParameter
    /// (as the C++, Go and Zig bindings do for both): the lease threw .invalidArgument,
    /// the reader .nullParameter. Each says what was given back; a bad argument to a
    /// live one is still .invalidArgument.
    func testAReleasedLeaseThrowsTheCodeOfAClosedReader() throws {
        let cache = try Storage.inMemory()
        try cache.set("v", bytes("value"))
        let reader = try XCTUnwrap(try cache.reader("v"))
        reader.close()
        var closed: BackLiteError?
        XCTAssertThrowsError(try reader.read()) { closed = $0 as? BackLiteError }
        XCTAssertEqual(closed?.code, .nullParameter)
        XCTAssertEqual(closed?.message, "the reader is closed")

        guard case .lease(let abandoned) = try cache.tryAcquire("a") else { return XCTFail("no lease") }
        XCTAssertThrowsError(try abandoned.extend(milliseconds: 0)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
        }
        abandoned.abandon()
        guard case .lease(let fulfilled) = try cache.tryAcquire("f") else { return XCTFail("no lease") }
        try fulfilled.fulfill(bytes("f"))
        for lease in [abandoned, fulfilled] {
            XCTAssertThrowsError(try lease.extend(milliseconds: 1000)) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, closed?.code)
                XCTAssertEqual((error as? BackLiteError)?.message, "the lease was already released")
            }
            XCTAssertThrowsError(try lease.fulfill(bytes("again"))) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, closed?.code)
                XCTAssertEqual((error as? BackLiteError)?.message, "the lease was already released")
            }
        }
        XCTAssertFalse(try cache.contains("a"))
        XCTAssertEqual(try cache.get("f"), bytes("f"))
    }

    func testALeaseDroppedWithoutFulfilIsAbandoned() throws {
        let cache = try Storage.inMemory()
        do {
            guard case .lease = try cache.tryAcquire("k") else { return XCTFail("no lease") }
        }
        guard case .lease(let next) = try cache.tryAcquire("k") else { return XCTFail("still held") }
        next.abandon()
        XCTAssertFalse(try cache.contains("k"))
    }

    func testALeaseTakenOverThrowsLeaseLostAndStoresNothing() throws {
        let cache = try Storage.inMemory()
        guard case .lease(let stale) = try cache.tryAcquire("k", leaseMilliseconds: 1) else {
            return XCTFail("no lease")
        }
        var next: Lease?
        for _ in 0..<1000 { // wait out the 1 ms deadline
            if case .lease(let l) = try cache.tryAcquire("k") { next = l; break }
            Thread.sleep(forTimeInterval: 0.002)
        }
        let fresh = try XCTUnwrap(next)
        XCTAssertThrowsError(try stale.extend(milliseconds: 1000)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .leaseLost)
        }
        XCTAssertThrowsError(try stale.fulfill(bytes("stale"))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .leaseLost)
        }
        XCTAssertFalse(try cache.contains("k"))
        try fresh.fulfill(bytes("fresh"))
        XCTAssertEqual(try cache.get("k"), bytes("fresh"))
    }

    func testALeaseOutlivesItsStorage() throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("lease.db")
        var cache: Storage? = try Storage(url: url)
        guard case .lease(let lease) = try cache!.tryAcquire("k") else { return XCTFail("no lease") }
        cache = nil
        try lease.fulfill(bytes("late"))
        XCTAssertEqual(try Storage(url: url).get("k"), bytes("late"))
    }

    // MARK: the async memoiser

    func testAsyncCachedComputesOnceAcrossConcurrentTasks() async throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("async.db")
        let cache = try Storage(url: url)
        let calls = Counter()
        let values = try await withThrowingTaskGroup(of: Data.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    try await cache.cached(key: "report") {
                        calls.increment()
                        try await Task.sleep(nanoseconds: 50_000_000)
                        return bytes("built once")
                    }
                }
            }
            return try await group.reduce(into: [Data]()) { $0.append($1) }
        }
        XCTAssertEqual(values, Array(repeating: bytes("built once"), count: 16))
        XCTAssertEqual(calls.value, 1)
        XCTAssertEqual(try cache.get("report"), bytes("built once"))
    }

    func testAsyncCachedHitDoesNotCompute() async throws {
        let cache = try Storage.inMemory()
        try cache.set("k", bytes("stored"))
        let value = try await cache.cached(key: "k") { () async throws -> Data in
            XCTFail("computed on a hit")
            return Data()
        }
        XCTAssertEqual(value, bytes("stored"))
    }

    /// Many tasks wait for a key that another owner holds, more than the cooperative pool
    /// has threads. If they blocked their threads, this test's own task could not run
    /// again to fulfil the lease.
    func testAsyncWaitersNeverBlockAThread() async throws {
        let cache = try Storage.inMemory()
        guard case .lease(let lease) = try cache.tryAcquire("k") else { return XCTFail("no lease") }
        let calls = Counter()
        let waiters = (0..<32).map { _ in
            Task {
                try await cache.cached(key: "k") { () async throws -> Data in
                    calls.increment()
                    return bytes("waiter")
                }
            }
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        try lease.fulfill(bytes("holder"))
        for waiter in waiters {
            let value = try await waiter.value
            XCTAssertEqual(value, bytes("holder"))
        }
        XCTAssertEqual(calls.value, 0)
    }

    func testAsyncThrowingComputeIsRethrownAndReleasesTheKey() async throws {
        let cache = try Storage.inMemory()
        do {
            _ = try await cache.cached(key: "k") { () async throws -> Data in throw ComputeBroke() }
            XCTFail("no error")
        } catch let error as ComputeBroke {
            XCTAssertEqual(error, ComputeBroke())
        }
        XCTAssertFalse(try cache.contains("k"))
        // The key was released: the next caller computes at once.
        guard case .lease(let lease) = try cache.tryAcquire("k") else { return XCTFail("key still held") }
        lease.abandon()
        let value = try await cache.cached(key: "k") { () async throws -> Data in bytes("second") }
        XCTAssertEqual(value, bytes("second"))
    }

    /// The async memoiser's call of the key its own compute is computing waited for its
    /// own lease (renewed by the library) for ever; the blocking one inside it waited its
    /// whole wait. Both compute at once, also from a task the compute starts, and store
    /// nothing; the outer call stores its value. Another key is memoised as ever.
    func testAnAsyncCallOfItsOwnKeyInsideItsComputeComputesAtOnce() async throws {
        let cache = try Storage.inMemory()
        let calls = Counter()
        let value = try await cache.cached(key: "k", expiration: .never) { () async throws -> Data in
            calls.increment()
            let blocking = try cache.cachedExclusive(key: "k", waitTimeoutMilliseconds: 2_000) { bytes("blocking") }
            XCTAssertEqual(blocking, bytes("blocking"))
            let nested = try await cache.cached(key: "k") { () async throws -> Data in bytes("nested") }
            XCTAssertEqual(nested, bytes("nested"))
            let child = try await withThrowingTaskGroup(of: Data.self) { group in
                group.addTask { try await cache.cached(key: "k") { () async throws -> Data in bytes("child") } }
                return try await group.reduce(into: Data()) { $0.append($1) }
            }
            XCTAssertEqual(child, bytes("child"))
            XCTAssertFalse(try cache.contains("k"))
            let other = try await cache.cached(key: "other") { () async throws -> Data in bytes("o") }
            XCTAssertEqual(other, bytes("o"))
            return bytes("outer")
        }
        XCTAssertEqual(value, bytes("outer"))
        XCTAssertEqual(calls.value, 1)
        XCTAssertEqual(try cache.get("k"), bytes("outer"))
        XCTAssertEqual(try cache.get("other"), bytes("o"))
        let again = try await cache.cached(key: "k") { () async throws -> Data in bytes("again") }
        XCTAssertEqual(again, bytes("outer"))
    }

    /// The same recursion through another `Storage` of the same file (the path opened
    /// again, or a link to it): the lease is the file's, so the blocking call waited for
    /// its own caller's lease its whole wait, then threw .leaseHeld, and the async one
    /// waited for ever. Both compute at once and store nothing; the outer call stores
    /// its value. The same key of another file is memoised as ever.
    func testACallOfItsOwnKeyThroughAnotherStorageOfTheFileComputesAtOnce() async throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("c.db").path
        let link = dir.appendingPathComponent("link.db").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let outer = try Storage(path: path)
        let again = try Storage(path: path)
        let linked = try Storage(path: link)
        let otherFile = try Storage(path: dir.appendingPathComponent("other.db").path)

        // The blocking memoiser first: before the fix it threw .leaseHeld here, and the
        // test ended before the async calls, which hung.
        let blocking = try outer.cachedExclusive(key: "b", expiration: .never, waitTimeoutMilliseconds: 2_000) {
            for (name, cache) in [("again", again), ("linked", linked)] {
                let nested = try cache.cachedExclusive(key: "b", waitTimeoutMilliseconds: 2_000) { bytes(name) }
                XCTAssertEqual(nested, bytes(name))
            }
            XCTAssertFalse(try again.contains("b"))
            XCTAssertEqual(try otherFile.cachedExclusive(key: "b", waitTimeoutMilliseconds: 2_000) { bytes("o") },
                           bytes("o"))
            return bytes("outer")
        }
        XCTAssertEqual(blocking, bytes("outer"))
        XCTAssertEqual(try linked.get("b"), bytes("outer"))
        XCTAssertEqual(try otherFile.get("b"), bytes("o"))

        let calls = Counter()
        let value = try await outer.cached(key: "a", expiration: .never) { () async throws -> Data in
            calls.increment()
            let nested = try await again.cached(key: "a") { () async throws -> Data in bytes("again") }
            XCTAssertEqual(nested, bytes("again"))
            let child = try await withThrowingTaskGroup(of: Data.self) { group in
                group.addTask { try await linked.cached(key: "a") { () async throws -> Data in bytes("linked") } }
                return try await group.reduce(into: Data()) { $0.append($1) }
            }
            XCTAssertEqual(child, bytes("linked"))
            XCTAssertFalse(try again.contains("a"))
            let other = try await otherFile.cached(key: "a") { () async throws -> Data in bytes("o") }
            XCTAssertEqual(other, bytes("o"))
            return bytes("outer")
        }
        XCTAssertEqual(value, bytes("outer"))
        XCTAssertEqual(calls.value, 1)
        XCTAssertEqual(try again.get("a"), bytes("outer"))
        XCTAssertEqual(try otherFile.get("a"), bytes("o"))
        // Once the outer call is over, the key is an ordinary hit through every handle.
        let hit = try await linked.cached(key: "a") { () async throws -> Data in bytes("later") }
        XCTAssertEqual(hit, bytes("outer"))
    }

    /// A task the compute starts and does not await inherits the keys being computed,
    /// and may run on after the compute has returned: its call of the key is then no
    /// longer inside that compute, and is memoised as any other (a hit here). It
    /// computed at once, stored nothing and returned its own value, for ever after.
    func testATaskTheComputeLeavesRunningCallsItsKeyAsAnyOtherOnceTheComputeReturned() async throws {
        let cache = try Storage.inMemory()
        let (gate, open) = AsyncStream<Void>.makeStream()
        let late = Counter()
        var asyncLater: Task<Data, any Error>?
        var blockingLater: Task<Data, any Error>?
        let value = try await cache.cached(key: "a", expiration: .never) { () async throws -> Data in
            asyncLater = Task {
                for await _ in gate { break }
                return try await cache.cached(key: "a") { () async throws -> Data in
                    late.increment()
                    return bytes("late")
                }
            }
            return bytes("outer a")
        }
        let blocking = try cache.cachedExclusive(key: "b", expiration: .never) {
            blockingLater = Task {
                for await _ in gate { break }
                return try cache.cachedExclusive(key: "b", waitTimeoutMilliseconds: 2_000) {
                    late.increment()
                    return bytes("late")
                }
            }
            return bytes("outer b")
        }
        XCTAssertEqual([value, blocking], [bytes("outer a"), bytes("outer b")])
        open.yield()
        open.yield()
        open.finish()
        let asyncGot = try await XCTUnwrap(asyncLater).value
        let blockingGot = try await XCTUnwrap(blockingLater).value
        XCTAssertEqual([asyncGot, blockingGot], [bytes("outer a"), bytes("outer b")])
        XCTAssertEqual(late.value, 0)
    }

    func testAsyncWaiterCanBeCancelled() async throws {
        let cache = try Storage.inMemory()
        guard case .lease(let lease) = try cache.tryAcquire("k") else { return XCTFail("no lease") }
        defer { lease.abandon() }
        let waiter = Task {
            try await cache.cached(key: "k") { () async throws -> Data in bytes("never") }
        }
        try await Task.sleep(nanoseconds: 20_000_000)
        waiter.cancel()
        do {
            _ = try await waiter.value
            XCTFail("not cancelled")
        } catch is CancellationError {}
    }

    /// A task cancelled before its call still gets the value already stored (a hit
    /// costs no wait and no compute); on a miss it throws CancellationError, computes
    /// nothing and leaves the key free. It threw CancellationError for the hit too.
    func testACancelledTaskGetsAStoredValueAndComputesNothingOnAMiss() async throws {
        let cache = try Storage.inMemory()
        try cache.set("stored", bytes("there"))
        let computed = Counter()
        let task = Task { () async throws -> [Data?] in
            withUnsafeCurrentTask { $0?.cancel() }
            let hit = try await cache.cached(key: "stored") { () async throws -> Data in
                computed.increment()
                return bytes("computed")
            }
            var missed: Data?
            do {
                missed = try await cache.cached(key: "missing") { () async throws -> Data in
                    computed.increment()
                    return bytes("computed")
                }
            } catch is CancellationError {}
            return [hit, missed]
        }
        let got = try await task.value
        XCTAssertEqual(got, [bytes("there"), nil])
        XCTAssertEqual(computed.value, 0)
        XCTAssertNil(try cache.get("missing"))
        guard case .lease(let lease) = try cache.tryAcquire("missing") else { return XCTFail("the key is not free") }
        lease.abandon()
    }

    /// A compute five lease lengths long: the library renews the lease meanwhile, so a
    /// second handle (another process, as far as leases go) waits and gets its value.
    func testAsyncComputeOutlivingTheLeaseLengthIsComputedOnce() async throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("renew.db")
        let a = try Storage(url: url, options: Options(leaseMilliseconds: 300))
        let b = try Storage(url: url, options: Options(leaseMilliseconds: 300))
        let running = Counter()
        let calls = Counter()
        let computing = Task {
            try await a.cached(key: "slow") { () async throws -> Data in
                calls.increment()
                running.increment()
                try await Task.sleep(nanoseconds: 1_500_000_000) // five lease lengths
                return bytes("from a")
            }
        }
        while running.value == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        let waited = try await b.cached(key: "slow") { () async throws -> Data in
            calls.increment()
            return bytes("from b")
        }
        let value = try await computing.value
        XCTAssertEqual(value, bytes("from a"))
        XCTAssertEqual(waited, bytes("from a"))
        XCTAssertEqual(calls.value, 1)
        XCTAssertEqual(try b.stats().misses, 1) // one wait, one miss
    }

    func testAsyncTooLargeValueIsStillReturned() async throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 3))
        let value = try await cache.cached(key: "k") { () async throws -> Data in bytes("much too long") }
        XCTAssertEqual(value, bytes("much too long"))
        XCTAssertFalse(try cache.contains("k"))
    }

    /// The computing task cancelled mid-compute: it throws CancellationError, its lease
    /// is abandoned at once, and a task waiting for the key computes it.
    func testCancellingTheComputingTaskHandsTheKeyToAWaiter() async throws {
        let cache = try Storage.inMemory()
        let started = Counter()
        let computing = Task {
            try await cache.cached(key: "k") { () async throws -> Data in
                started.increment()
                try await Task.sleep(nanoseconds: 600_000_000_000)
                return bytes("never")
            }
        }
        while started.value == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        let waiter = Task {
            try await cache.cached(key: "k") { () async throws -> Data in bytes("the waiter's") }
        }
        computing.cancel()
        do {
            _ = try await computing.value
            XCTFail("not cancelled")
        } catch is CancellationError {}
        let value = try await waiter.value
        XCTAssertEqual(value, bytes("the waiter's"))
        XCTAssertEqual(try cache.get("k"), bytes("the waiter's"))
    }

    /// `Options.leaseMilliseconds` reaches the library: the lease another handle sees
    /// held has at most that long left (not the default 30 000 ms).
    func testLeaseMillisecondsSetsTheLengthOfTheMemoisersLease() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("c.db").path
        let a = try Storage(path: path, options: Options(leaseMilliseconds: 400))
        let b = try Storage(path: path)
        let inside = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? a.cachedExclusive(key: "k") {
                inside.signal()
                release.wait()
                return bytes("a")
            }
            done.signal()
        }
        inside.wait()
        XCTAssertThrowsError(try b.cachedExclusive(key: "k", waitTimeoutMilliseconds: 0) { bytes("b") }) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .leaseHeld)
            let left = (error as? BackLiteError)?.leaseTimeLeftMilliseconds ?? -1
            XCTAssertTrue(left > 0 && left <= 400, "\(left)")
        }
        if case .held(let left) = try b.tryAcquire("k") {
            XCTAssertTrue(left > 0 && left <= 400, "\(left)")
        } else {
            XCTFail("not held")
        }
        release.signal()
        done.wait()
        XCTAssertEqual(try b.get("k"), bytes("a"))
    }
}
