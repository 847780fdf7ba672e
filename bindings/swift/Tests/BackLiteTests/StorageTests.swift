import BackLite
import Foundation
import XCTest

/// A fresh temporary directory, removed by the test's teardown.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("backlite-swift-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

func bytes(_ s: String) -> Data { Data(s.utf8) }

/// `count` bytes of 4 KiB blocks that differ by `seed` and by their place: built a
/// block at a time, since a byte at a time is slow in a debug build under valgrind.
func blocks(_ count: Int, seed: UInt8) -> Data {
    var block = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(seed)) }
    var data = Data(capacity: count)
    var n = 0
    while data.count < count {
        block[0] = UInt8(truncatingIfNeeded: n)
        block[1] = UInt8(truncatingIfNeeded: n >> 8)
        data.append(contentsOf: block.prefix(count - data.count))
        n += 1
    }
    return data
}

final class StorageTests: XCTestCase {
    func testHeaderAndLibraryVersionsAgree() {
        XCTAssertEqual(headerVersion, libraryVersion)
    }

    func testSetThenGetReturnsTheValueAndAMissIsNil() throws {
        let cache = try Storage.inMemory()
        try cache.set("greeting", bytes("hello"), expiration: .never)
        XCTAssertEqual(try cache.get("greeting"), bytes("hello"))
        XCTAssertNil(try cache.get("absent"))
    }

    func testEmptyKeyAndEmptyValueAreValid() throws {
        let cache = try Storage.inMemory()
        try cache.set("", Data())
        XCTAssertEqual(try cache.get(""), Data())
        XCTAssertTrue(try cache.contains(Data()))
    }

    func testBinaryKeysAndValuesRoundTripByteForByte() throws {
        let cache = try Storage.inMemory()
        let key: [UInt8] = [0, 1, 2, 0xff, 0]
        let value = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        try cache.set(key, value)
        XCTAssertEqual(try cache.get(Data(key)), value)
        XCTAssertEqual(try cache.get(key), value)
        // A String key is its UTF-8 bytes.
        try cache.set("clé", bytes("v"))
        XCTAssertEqual(try cache.get(Data("clé".utf8)), bytes("v"))
    }

    func testStringAndSubstringKeysAreTheirUTF8BytesNULsIncluded() throws {
        let cache = try Storage.inMemory()
        // A NUL inside a String key is a byte of the key, not its end.
        try cache.set("a\u{0}b", bytes("nul"))
        XCTAssertEqual(try cache.get(Data([0x61, 0, 0x62])), bytes("nul"))
        XCTAssertNil(try cache.get("a"))
        // A Substring is the bytes of its own range, not of the String it slices.
        let whole = "xxé\u{0}zz"
        try cache.set(whole.dropFirst(2).dropLast(1), bytes("slice"))
        XCTAssertEqual(try cache.get([0xc3, 0xa9, 0, 0x7a] as [UInt8]), bytes("slice"))
        // Equal Strings in Swift (NFC "é", NFD "e" + U+0301) are different keys: bytes,
        // as in every other binding.
        try cache.set("\u{e9}", bytes("nfc"))
        XCTAssertNil(try cache.get("e\u{301}"))
        XCTAssertEqual(Set(try cache.keys()),
                       [Data([0x61, 0, 0x62]), Data([0xc3, 0xa9, 0, 0x7a]), Data([0xc3, 0xa9])])
    }

    func testItemReportsTheTimeLeftOrNilForNever() throws {
        let cache = try Storage.inMemory()
        try cache.set("forever", bytes("a"), expiration: .never)
        try cache.set("minute", bytes("b"), expiration: .seconds(60))
        XCTAssertNil(try cache.item("forever")?.expiresInMilliseconds)
        let minute = try XCTUnwrap(try cache.item("minute"))
        XCTAssertEqual(minute.value, bytes("b"))
        XCTAssertGreaterThan(minute.expiresInMilliseconds!, 50_000)
        XCTAssertLessThanOrEqual(minute.expiresInMilliseconds!, 60_000)
        XCTAssertNil(try cache.item("absent"))
    }

    func testExpirationZeroStoresNothingAndDefaultUsesTheOptions() throws {
        let cache = try Storage.inMemory(options: Options(defaultExpiration: .milliseconds(0)))
        try cache.set("now", bytes("x"), expiration: .milliseconds(0))
        XCTAssertFalse(try cache.contains("now"))
        try cache.set("default", bytes("x"))
        XCTAssertFalse(try cache.contains("default"))
        try cache.set("kept", bytes("x"), expiration: .never)
        XCTAssertTrue(try cache.contains("kept"))
        if #available(macOS 13, *) {
            try cache.set("duration", bytes("x"), expiration: .after(.seconds(30)))
            XCTAssertTrue(try cache.contains("duration"))
        }
    }

    func testExpirationsSaturateTowardTheirSignAndDurationsRoundUp() throws {
        // A past time is already expired however far back; a future one far ahead is
        // as long as Int64 holds (the library saturates its deadline).
        XCTAssertEqual(Expiration.seconds(Int64.min), .milliseconds(0))
        XCTAssertEqual(Expiration.seconds(-1), .milliseconds(0))
        XCTAssertEqual(Expiration.seconds(Int64.max), .milliseconds(Int64.max))
        let cache = try Storage.inMemory()
        try cache.set("past", bytes("old"), expiration: .never)
        try cache.set("past", bytes("x"), expiration: .seconds(Int64.min))
        XCTAssertNil(try cache.get("past"))
        try cache.set("far", bytes("x"), expiration: .milliseconds(Int64.max))
        XCTAssertEqual(try cache.get("far"), bytes("x"))
        if #available(macOS 13, *) {
            // Rounded up, as the other bindings do: a positive duration is never 0,
            // "already expired".
            XCTAssertEqual(Expiration.after(.nanoseconds(1)), .milliseconds(1))
            XCTAssertEqual(Expiration.after(.microseconds(1500)), .milliseconds(2))
            XCTAssertEqual(Expiration.after(.milliseconds(2)), .milliseconds(2))
            XCTAssertEqual(Expiration.after(.zero), .milliseconds(0))
            XCTAssertEqual(Expiration.after(.nanoseconds(-1)), .milliseconds(0))
            XCTAssertEqual(Expiration.after(.seconds(-1.5)), .milliseconds(0))
            XCTAssertEqual(Expiration.after(.seconds(Int64.min)), .milliseconds(0))
            XCTAssertEqual(Expiration.after(.seconds(Int64.max)), .milliseconds(Int64.max))
            // The largest whole seconds that fit in Int64 milliseconds, plus a fraction:
            // the sum overflows, and saturates rather than trapping.
            let last = Duration.seconds(Int64.max / 1000) + .milliseconds(900)
            XCTAssertEqual(Expiration.after(last), .milliseconds(Int64.max))
            try cache.set("soon", bytes("x"), expiration: .after(.seconds(60) + .nanoseconds(1)))
            let left = try XCTUnwrap(try cache.item("soon")?.expiresInMilliseconds)
            XCTAssertGreaterThan(left, 50_000)
            XCTAssertLessThanOrEqual(left, 60_001)
        }
    }

    func testSetManyWritesEveryEntry() throws {
        let cache = try Storage.inMemory()
        try cache.setMany([
            Entry(key: "a", value: bytes("1")),
            Entry(key: "b", value: bytes("22"), expiration: .never),
            Entry(key: Data([0, 9]), value: Data(), expiration: .seconds(60)),
        ])
        XCTAssertEqual(try cache.get("a"), bytes("1"))
        XCTAssertEqual(try cache.get("b"), bytes("22"))
        XCTAssertEqual(try cache.get(Data([0, 9])), Data())
        try cache.setMany(["x": bytes("10"), "y": bytes("20")], expiration: .never)
        XCTAssertEqual(try cache.get("y"), bytes("20"))
        try cache.setMany([])
        XCTAssertEqual(try cache.stats().count, 5)
    }

    func testSetManyIsAllOrNothing() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 4))
        XCTAssertThrowsError(try cache.setMany([
            Entry(key: "ok", value: bytes("1")),
            Entry(key: "big", value: bytes("12345")),
        ])) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .tooLarge)
        }
        XCTAssertFalse(try cache.contains("ok"))
    }

    /// A dictionary has no order its caller knows: a failing pair is named by its key,
    /// not by the library's `entries[i]`, an index into the binding's array.
    func testSetManyOfADictionaryNamesTheKeyOfAFailingPair() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 4))
        let long = String(repeating: "k", count: 100)
        for (values, named) in [(["ok": bytes("1"), "big": bytes("12345"), "fine": bytes("2")], "values[\"big\"]: "),
                                ([long: bytes("123456")], "values[\"\(long.prefix(64))...\"]: ")] {
            XCTAssertThrowsError(try cache.setMany(values, expiration: .never)) { error in
                guard let error = error as? BackLiteError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.code, .tooLarge)
                XCTAssertTrue(error.message.hasPrefix(named), error.message)
                XCTAssertTrue(error.message.contains("larger than max_size"), error.message)
            }
        }
        XCTAssertEqual(try cache.stats().count, 0)
        XCTAssertThrowsError(try cache.setMany([Entry(key: "ok", value: bytes("1")),
                                                Entry(key: "big", value: bytes("12345"))])) { error in
            XCTAssertTrue((error as? BackLiteError)?.message.hasPrefix("entries[1]: ") ?? false, "\(error)")
        }
    }

    func testDeleteSaysWhetherThereWasAnEntry() throws {
        let cache = try Storage.inMemory()
        try cache.set("k", bytes("v"))
        XCTAssertTrue(try cache.delete("k"))
        XCTAssertFalse(try cache.delete("k"))
        XCTAssertNil(try cache.get("k"))
    }

    /// A miss allocates no error object, and one set anyway is freed: run_tests.sh runs
    /// this suite under valgrind, where 3,000 leaked objects would fail it.
    func testMissesLeaveNothingToFree() throws {
        let cache = try Storage.inMemory()
        for _ in 0..<1000 {
            XCTAssertNil(try cache.get("absent"))
            XCTAssertFalse(try cache.delete("absent"))
            XCTAssertFalse(try cache.contains("absent"))
        }
        XCTAssertEqual(try cache.stats().misses, 1000)
    }

    func testContainsIsNotAnAccess() throws {
        let cache = try Storage.inMemory()
        try cache.set("k", bytes("v"))
        XCTAssertTrue(try cache.contains("k"))
        XCTAssertFalse(try cache.contains("nope"))
        let stats = try cache.stats()
        XCTAssertEqual(stats.hits, 0)
        XCTAssertEqual(stats.misses, 0)
    }

    func testKeysListsEveryLiveKey() throws {
        let cache = try Storage.inMemory()
        try cache.set("a", bytes("1"))
        try cache.set("b", bytes("2"))
        try cache.set("gone", bytes("3"), expiration: .milliseconds(0))
        let keys = try cache.keys().map { String(decoding: $0, as: UTF8.self) }.sorted()
        XCTAssertEqual(keys, ["a", "b"])
    }

    func testForEachKeyStopsWhenTheBodyReturnsFalse() throws {
        let cache = try Storage.inMemory()
        for k in ["a", "b", "c", "d"] { try cache.set(k, bytes("v")) }
        var seen = 0
        try cache.forEachKey { _ in
            seen += 1
            return seen < 2
        }
        XCTAssertEqual(seen, 2)
    }

    struct VisitorGaveUp: Error {}

    func testAnErrorThrownByTheKeyVisitorIsRethrown() throws {
        let cache = try Storage.inMemory()
        for k in ["a", "b", "c"] { try cache.set(k, bytes("v")) }
        var seen = 0
        XCTAssertThrowsError(try cache.forEachKey { _ in
            seen += 1
            throw VisitorGaveUp()
        }) { error in
            XCTAssertTrue(error is VisitorGaveUp)
        }
        XCTAssertEqual(seen, 1)
    }

    func testTheKeyVisitorMayUseTheStorage() throws {
        let cache = try Storage.inMemory()
        try cache.set("a", bytes("1"))
        try cache.set("b", bytes("2"))
        try cache.forEachKey { key in
            try cache.delete(key)
            return true
        }
        XCTAssertEqual(try cache.stats().count, 0)
    }

    func testForEachChunkHandsALargeValueOverInBoundedChunks() throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try Storage(path: dir.appendingPathComponent("c.db").path)
        let big = Data((0..<(3 * 256 * 1024 + 5)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
        try cache.set("big", big)
        var got = Data()
        var largest = 0
        XCTAssertTrue(try cache.forEachChunk(of: "big") { chunk in
            largest = max(largest, chunk.count)
            got.append(chunk)
        })
        XCTAssertEqual(got, big)
        XCTAssertLessThanOrEqual(largest, 256 * 1024)
        XCTAssertFalse(try cache.forEachChunk(of: "missing") { _ in XCTFail("a miss calls nothing") })
    }

    /// How many value files (v2-*.blv, or v-*.blv of format 1) the cache at `path` has.
    func valueFiles(_ path: String) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path + ".values")) ?? []
        return names.filter { ($0.hasPrefix("v2-") || $0.hasPrefix("v-")) && $0.hasSuffix(".blv") }.count
    }

    func testAValueAboveTheFileThresholdLivesInAFileAndReadsBack() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("c.db").path
        let cache = try Storage(path: path, options: Options(fileThreshold: .bytes(4096)))
        let small = Data(repeating: 115, count: 4095)
        let large = Data((0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 1) })
        try cache.set("small", small)
        XCTAssertEqual(valueFiles(path), 0)
        try cache.set("large", large)
        XCTAssertEqual(valueFiles(path), 1)
        XCTAssertEqual(try cache.get("large"), large)
        XCTAssertEqual(try cache.get("small"), small)
        var streamed = Data()
        XCTAssertTrue(try cache.forEachChunk(of: "large") { streamed.append($0) })
        XCTAssertEqual(streamed, large)
        XCTAssertTrue(try cache.delete("large"))
        XCTAssertEqual(valueFiles(path), 0)

        let never = dir.appendingPathComponent("never.db").path
        let inDatabase = try Storage(path: never, options: Options(fileThreshold: .never))
        try inDatabase.set("large", large)
        XCTAssertEqual(try inDatabase.get("large"), large)
        XCTAssertFalse(FileManager.default.fileExists(atPath: never + ".values"))

        for bad in [FileThreshold.bytes(0), .bytes(UInt64(Int64.max) + 1)] {
            XCTAssertThrowsError(try Storage.inMemory(options: Options(fileThreshold: bad))) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
                XCTAssertTrue((error as? BackLiteError)?.message.contains("fileThreshold") ?? false)
            }
        }
    }

    func testAnErrorThrownByTheChunkVisitorIsRethrown() throws {
        let cache = try Storage.inMemory()
        try cache.set("k", Data(count: 600 * 1024))
        var calls = 0
        XCTAssertThrowsError(try cache.forEachChunk(of: "k") { _ in
            calls += 1
            throw VisitorGaveUp()
        }) { error in
            XCTAssertTrue(error is VisitorGaveUp)
        }
        XCTAssertEqual(calls, 1)
    }

    func testClearRemovesEverything() throws {
        let cache = try Storage.inMemory()
        try cache.set("a", bytes("1"))
        try cache.set("b", bytes("2"))
        try cache.clear()
        XCTAssertEqual(try cache.stats().count, 0)
        XCTAssertNil(try cache.get("a"))
    }

    func testStatsCountEntriesSizesHitsMissesAndEvictions() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 10))
        try cache.set("a", bytes("12345"))
        try cache.set("b", bytes("12345"))
        XCTAssertNotNil(try cache.get("a"))
        XCTAssertNil(try cache.get("zz"))
        try cache.set("c", bytes("123")) // evicts b, the least recently used
        let s = try cache.stats()
        XCTAssertEqual(s.count, 2)
        XCTAssertEqual(s.totalSize, 8)
        XCTAssertEqual(s.maxSize, 10)
        XCTAssertEqual(s.hits, 1)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(s.evictions, 1)
        XCTAssertEqual(s.expirations, 0)
        XCTAssertFalse(try cache.contains("b"))
    }

    func testEveryEvictionPolicyCanBeChosen() throws {
        XCTAssertEqual(EvictionPolicy(rawValue: "least-frequently-used"), .leastFrequentlyUsed)
        XCTAssertEqual(EvictionPolicy.allCases.count, 5)
        for policy in EvictionPolicy.allCases {
            let cache = try Storage.inMemory(options: Options(maxSize: 2, evictionPolicy: policy))
            for k in ["a", "b", "c"] { try cache.set(k, bytes("1")) }
            XCTAssertEqual(try cache.stats().count, 2, "\(policy)")
        }
    }

    func testFirstInFirstOutEvictsTheEntrySetEarliest() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 2, evictionPolicy: .firstInFirstOut))
        try cache.set("a", bytes("1"))
        try cache.set("b", bytes("2"))
        _ = try cache.get("a")
        try cache.set("c", bytes("3"))
        XCTAssertFalse(try cache.contains("a"))
        XCTAssertTrue(try cache.contains("b"))
    }

    func testCheckAndVacuumRunOnAHealthyFile() throws {
        let cache = try Storage.inMemory()
        try cache.set("a", bytes("1"))
        let report = try cache.check()
        XCTAssertTrue(report.healthy)
        XCTAssertTrue(report.integrityOK)
        XCTAssertFalse(report.repaired)
        XCTAssertEqual(report.entries, 1)
        try cache.vacuum()
    }

    func testAFilePersistsAcrossHandlesAndAVersionTagChangeDropsIt() throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("cache.db")
        do {
            let cache = try Storage(url: url, options: Options(versionTag: "v1"))
            try cache.set("k", bytes("v"))
        }
        XCTAssertEqual(try Storage(url: url, options: Options(versionTag: "v1")).get("k"), bytes("v"))
        XCTAssertNil(try Storage(url: url, options: Options(busyTimeoutMilliseconds: 1000, versionTag: "v2")).get("k"))
    }

    #if os(Linux)
    /// The file descriptors this process has open on `path` (its -wal and -shm too).
    private func openDescriptors(on path: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter {
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "")
                .hasPrefix(path)
        }.count
    }

    func testDeinitClosesTheFile() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("closed.db").path
        var cache: Storage? = try Storage(path: path)
        try cache!.set("k", bytes("v"))
        XCTAssertGreaterThan(openDescriptors(on: path), 0)
        cache = nil
        XCTAssertEqual(openDescriptors(on: path), 0)
    }
    #endif

    // MARK: errors, with codes and messages

    func testATooLargeValueThrowsTooLargeWithItsCodeAndRemovesTheOldValue() throws {
        let cache = try Storage.inMemory(options: Options(maxSize: 4))
        try cache.set("k", bytes("old"))
        XCTAssertThrowsError(try cache.set("k", bytes("too long"))) { error in
            guard let error = error as? BackLiteError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.code, .tooLarge)
            XCTAssertEqual(error.code.rawValue, 8)
            XCTAssertFalse(error.message.isEmpty)
            XCTAssertTrue(error.description.contains("BackLite error 8"))
        }
        XCTAssertNil(try cache.get("k"))
        do {
            try cache.set("k", bytes("too long"))
            XCTFail("no error")
        } catch BackLiteError.tooLarge {
            // matched by code
        }
    }

    func testAFileThatIsNotACacheThrowsNotACacheAndIsLeftUntouched() throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("notes.txt")
        let content = Data(String(repeating: "just some text, not a database at all\n", count: 4).utf8)
        try content.write(to: url)
        XCTAssertThrowsError(try Storage(url: url)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .notACache)
            XCTAssertFalse((error as? BackLiteError)?.message.isEmpty ?? true)
        }
        XCTAssertEqual(try Data(contentsOf: url), content)
    }

    func testADirectoryThrowsIO() throws {
        let dir = try makeTemporaryDirectory(self)
        XCTAssertThrowsError(try Storage(path: dir.path)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .io)
        }
        XCTAssertThrowsError(try Storage(url: dir.appendingPathComponent("no/such/dir/cache.db"))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .io)
        }
    }

    func testAURLThatIsNotAFileURLThrowsInvalidArgumentAndCreatesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        let web = try XCTUnwrap(URL(string: "https://example.com\(dir.path)/cache.db"))
        XCTAssertThrowsError(try Storage(url: web)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
            XCTAssertEqual((error as? BackLiteError)?.message, "not a file URL: https")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
        let file = dir.appendingPathComponent("cache.db")
        try Storage(url: file).set("k", bytes("v"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: file.path))
    }

    /// `url.path` drops a file URL's host, query and fragment: file://server/share/c.db
    /// named a file on another machine and opened /share/c.db here, and
    /// file:///x/c.db?mode=ro (SQLite's read-only URI) opened /x/c.db to write. Each
    /// throws instead, and creates nothing; "localhost" is this machine.
    func testAFileURLWithAnotherHostOrAQueryThrowsInvalidArgumentAndCreatesNothing() throws {
        let dir = try makeTemporaryDirectory(self)
        for (text, named) in [("file://server\(dir.path)/cache.db", "host"),
                              ("file://\(dir.path)/cache.db?mode=ro", "query"),
                              ("file://\(dir.path)/cache.db#main", "fragment")] {
            let url = try XCTUnwrap(URL(string: text))
            XCTAssertTrue(url.isFileURL, text)
            XCTAssertThrowsError(try Storage(url: url), text) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument, text)
                XCTAssertTrue((error as? BackLiteError)?.message.contains(named) ?? false, text)
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], text)
        }
        let local = try XCTUnwrap(URL(string: "file://localhost\(dir.path)/cache.db"))
        try Storage(url: local).set("k", bytes("v"))
        XCTAssertEqual(try Storage(path: dir.appendingPathComponent("cache.db").path).get("k"), bytes("v"))
        // A '?' or '#' in a file's name is part of its path in a URL made from a path.
        let odd = dir.appendingPathComponent("a?b#c.db")
        try Storage(url: odd).set("k", bytes("odd"))
        XCTAssertEqual(try Storage(path: dir.path + "/a?b#c.db").get("k"), bytes("odd"))
    }

    func testBadOptionsThrowInvalidArgumentNamingTheOption() throws {
        XCTAssertThrowsError(try Storage.inMemory(options: Options(maxSize: 0))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
            XCTAssertTrue((error as? BackLiteError)?.message.contains("maxSize") ?? false)
        }
        XCTAssertThrowsError(try Storage.inMemory(options: Options(defaultExpiration: .default))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
        }
        XCTAssertThrowsError(try Storage(path: "bad\0path")) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
        }
        XCTAssertThrowsError(try Storage.inMemory(options: Options(versionTag: "a\0b"))) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
        }
    }

    /// `catch { print(error.localizedDescription) }`, the usual Swift report, shows the
    /// library's message (on Linux, Foundation's default text has neither it nor the code).
    func testLocalizedDescriptionCarriesTheLibrarysMessage() throws {
        let text = try makeTemporaryDirectory(self).appendingPathComponent("notes.txt")
        try Data("hello".utf8).write(to: text)
        XCTAssertThrowsError(try Storage(url: text)) { error in
            let message = (error as? BackLiteError)?.message ?? "?"
            XCTAssertTrue(message.contains("not a BackLite cache"), message)
            XCTAssertTrue(error.localizedDescription.contains(message), error.localizedDescription)
        }
    }

    func testEveryCodeHasItsValueAndADescription() {
        let codes: [(BackLiteError.Code, Int32)] = [
            (.notFound, 1), (.nullParameter, 2), (.invalidArgument, 3), (.io, 4), (.notACache, 5),
            (.corrupt, 6), (.busy, 7), (.tooLarge, 8), (.callbackFailed, 9), (.incompatible, 10),
            (.panic, 11), (.internal, 12), (.leaseLost, 13), (.leaseHeld, 14),
        ]
        for (code, value) in codes {
            XCTAssertEqual(code.rawValue, value)
            XCTAssertFalse(code.description.isEmpty)
        }
        XCTAssertFalse(BackLiteError.Code(rawValue: 999).description.isEmpty)
    }

    /// Each policy's own victim, so that no two enum values reach the library swapped:
    /// b has the oldest access, c the newest, d the fewest hits; a was set first, e last.
    func testEachPolicyEvictsItsOwnEntry() throws {
        let victims: [EvictionPolicy: String] = [
            .leastRecentlyUsed: "b", .mostRecentlyUsed: "c", .leastFrequentlyUsed: "d",
            .firstInFirstOut: "a", .lastInFirstOut: "e",
        ]
        XCTAssertEqual(Set(victims.keys), Set(EvictionPolicy.allCases))
        for (policy, victim) in victims {
            let cache = try Storage.inMemory(options: Options(maxSize: 5, evictionPolicy: policy))
            try cache.set("a", bytes("1"))
            try cache.set("b", bytes("1"))
            _ = try cache.get("b")
            for k in ["c", "d", "e"] { try cache.set(k, bytes("1")) }
            for k in ["a", "e", "c"] { _ = try cache.get(k) }
            try cache.set("f", bytes("1"))
            let left = try cache.keys().map { String(decoding: $0, as: UTF8.self) }.sorted()
            XCTAssertEqual(left, ["a", "b", "c", "d", "e", "f"].filter { $0 != victim }, "\(policy)")
        }
    }

    /// Empty keys and values, `[UInt8]` and `Substring` keys, and `Data` slices as values
    /// (whose indices do not start at 0) in one batch.
    func testSetManyTakesEmptyKeysAndValuesAndSlices() throws {
        let cache = try Storage.inMemory()
        try cache.setMany([Entry(key: "", value: Data()), Entry(key: Data(), value: bytes("x"))])
        XCTAssertEqual(try cache.get(""), bytes("x"))
        let big = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try cache.setMany([Entry(key: [UInt8](), value: big[10..<20]), Entry(key: "s!"[...].dropLast(), value: big.dropFirst(500))])
        XCTAssertEqual(try cache.get(Data()), big[10..<20])
        XCTAssertEqual(try cache.get("s"), Data(big.dropFirst(500)))
        try cache.setMany(["": Data(), "e\0x": bytes("nul")])
        XCTAssertEqual(try cache.get(""), Data())
        XCTAssertEqual(try cache.get([UInt8(ascii: "e"), 0, UInt8(ascii: "x")]), bytes("nul"))
        XCTAssertEqual(try cache.stats().count, 3)
    }

    /// One Storage shared by many tasks, each setting, getting, streaming and memoising
    /// keys of its own (values in the database and in files): every read is the value
    /// its task set last.
    func testManyTasksShareOneStorage() async throws {
        let dir = try makeTemporaryDirectory(self)
        let cache = try Storage(path: dir.appendingPathComponent("c.db").path,
                                options: Options(fileThreshold: .bytes(2048)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<12 {
                group.addTask {
                    for round in 0..<20 {
                        let key = "t\(t)-\(round % 4)"
                        let count = round % 2 == 0 ? 100 + t : 4000 + t * 10
                        let value = blocks(count, seed: UInt8(truncatingIfNeeded: t &* 20 &+ round))
                        try cache.set(key, value)
                        XCTAssertEqual(try cache.get(key), value, key)
                        let reader = try XCTUnwrap(try cache.reader(key), key)
                        var streamed = Data()
                        for try await chunk in reader { streamed.append(chunk) }
                        XCTAssertEqual(streamed, value, key)
                        var chunks = Data()
                        XCTAssertTrue(try cache.forEachChunk(of: key) { chunks.append($0) })
                        XCTAssertEqual(chunks, value, key)
                        let memo = try await cache.cached(key: "memo-\(round)") { () async throws -> Data in
                            bytes("memo \(round)")
                        }
                        XCTAssertEqual(memo, bytes("memo \(round)"))
                        if round % 5 == 4 { XCTAssertTrue(try cache.delete(key)) }
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertTrue(try cache.check().healthy)
    }

    /// A body that sets the key it is reading: the chunks are the value as it was when
    /// the read began (never a mix), and the new value is there after.
    func testAChunkVisitorThatSetsItsKeyReadsTheValueItBegan() throws {
        let dir = try makeTemporaryDirectory(self)
        for threshold in [FileThreshold.bytes(4096), .never] {
            let cache = try Storage(path: dir.appendingPathComponent("c-\(threshold).db").path,
                                    options: Options(fileThreshold: threshold))
            let old = blocks(2 * ValueReader.chunkSize + 11, seed: 1)
            let new = blocks(2 * ValueReader.chunkSize + 11, seed: 2)
            try cache.set("k", old)
            var got = Data()
            XCTAssertTrue(try cache.forEachChunk(of: "k") { chunk in
                if got.isEmpty { try cache.set("k", new) }
                got.append(chunk)
            })
            XCTAssertEqual(got, old, "\(threshold)")
            XCTAssertEqual(try cache.get("k"), new, "\(threshold)")
        }
    }

    /// A body that vacuums its storage: on a cache file the walk reads from a snapshot
    /// that the vacuum could only wait out for its whole busy timeout (30 s here), so
    /// it throws .busy at once, saying why, and the walk goes on; after the walk, and on
    /// an in-memory cache (whose value is copied out first), it vacuums.
    func testAVacuumInsideForEachChunkThrowsBusyAtOnceAndTheWalkGoesOn() throws {
        let dir = try makeTemporaryDirectory(self)
        let value = blocks(2 * ValueReader.chunkSize + 11, seed: 4)
        for place in ["file value", "database value", "small value", "memory"] {
            let path = place == "memory" ? ":memory:" : dir.appendingPathComponent("\(place).db").path
            let cache = try Storage(path: path, options: Options(
                busyTimeoutMilliseconds: 30_000,
                fileThreshold: place == "file value" ? .bytes(4096) : .never))
            let stored = place == "small value" ? bytes("small") : value
            try cache.set("k", stored)
            try cache.set("gone", value)
            XCTAssertTrue(try cache.delete("gone"))
            var got = Data()
            var inner: BackLiteError?
            var vacuumed = false
            XCTAssertTrue(try cache.forEachChunk(of: "k") { chunk in
                if got.isEmpty {
                    do {
                        try cache.vacuum()
                        vacuumed = true
                    } catch let error as BackLiteError {
                        inner = error
                    }
                }
                got.append(chunk)
            }, place)
            XCTAssertEqual(got, stored, place)
            if place == "memory" {
                XCTAssertTrue(vacuumed, "\(String(describing: inner))")
            } else {
                XCTAssertFalse(vacuumed, place)
                XCTAssertEqual(inner?.code, .busy, place)
                XCTAssertTrue(inner?.message.contains("inside forEachChunk") ?? false,
                              "\(place): \(String(describing: inner))")
            }
            try cache.vacuum()
            XCTAssertEqual(try cache.get("k"), stored, place)
            XCTAssertTrue(try cache.check().healthy, place)
        }
    }

    /// A body that vacuums through another `Storage` of the file it walks (the same
    /// path opened again, or another path to it): the snapshot is the file's, so that
    /// vacuum waited the whole busy timeout for it, then threw the library's .busy
    /// having rebuilt the file into the write-ahead log. It throws .busy at once, saying
    /// why, and the walk goes on; a vacuum of another file inside the walk is done, and
    /// after the walk every handle vacuums.
    func testAVacuumOfAnotherStorageOfTheWalkedFileThrowsBusyAtOnce() throws {
        let dir = try makeTemporaryDirectory(self)
        let path = dir.appendingPathComponent("walked.db").path
        let link = dir.appendingPathComponent("link.db").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let value = blocks(2 * ValueReader.chunkSize + 11, seed: 5)
        for threshold in [FileThreshold.bytes(4096), .never] {
            let walked = try Storage(path: path, options: Options(fileThreshold: threshold))
            try walked.set("k", value)
            try walked.set("gone", value)
            XCTAssertTrue(try walked.delete("gone"))
            // A short busy timeout: before the fix each of them waited it out.
            let options = Options(busyTimeoutMilliseconds: 2_000, fileThreshold: threshold)
            let samePath = try Storage(path: path, options: options)
            let otherPath = try Storage(path: link, options: options)
            let otherFile = try Storage(path: dir.appendingPathComponent("other-\(threshold).db").path,
                                        options: options)
            try otherFile.set("x", value)
            var got = Data()
            var refused: [BackLiteError] = []
            var otherFileVacuumed = false
            XCTAssertTrue(try walked.forEachChunk(of: "k") { chunk in
                if got.isEmpty {
                    for other in [samePath, otherPath] {
                        do {
                            try other.vacuum()
                        } catch let error as BackLiteError {
                            refused.append(error)
                        }
                    }
                    try otherFile.vacuum()
                    otherFileVacuumed = true
                }
                got.append(chunk)
            }, "\(threshold)")
            XCTAssertEqual(got, value, "\(threshold)")
            XCTAssertEqual(refused.map(\.code), [.busy, .busy], "\(threshold)")
            for error in refused {
                XCTAssertTrue(error.message.contains("inside forEachChunk"), "\(threshold): \(error)")
            }
            XCTAssertTrue(otherFileVacuumed, "\(threshold)")
            for cache in [samePath, otherPath, walked] {
                try cache.vacuum()
            }
            XCTAssertEqual(try otherPath.get("k"), value, "\(threshold)")
            XCTAssertTrue(try walked.check().healthy, "\(threshold)")
            try walked.clear()
        }
    }
}
