import BackLite
import CBackLite
import Foundation
import XCTest

private func patterned(_ count: Int) -> Data {
    Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })
}

/// Flips the last byte of the value in the cache's only value file: the value comes
/// first, then its 24-byte record (magic, length, CRC-32).
private func damageTheValueFile(_ path: String) throws {
    let folder = path + ".values"
    let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("v2-") || $0.hasPrefix("v-") }
    XCTAssertEqual(names.count, 1)
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: folder).appendingPathComponent(names[0]))
    defer { try? handle.close() }
    let at = try handle.seekToEnd() - 24 - 1
    try handle.seek(toOffset: at)
    let last = try handle.read(upToCount: 1)!
    try handle.seek(toOffset: at)
    try handle.write(contentsOf: Data([last[0] ^ 1]))
}

final class ReaderTests: XCTestCase {
    func testAReaderPullsFileAndDatabaseValuesInBoundedChunks() throws {
        let dir = try makeTemporaryDirectory(self)
        let big = patterned(1 << 20 + 3)
        for threshold in [FileThreshold.bytes(4096), .never] {
            let path = dir.appendingPathComponent("c-\(threshold).db").path
            let cache = try Storage(path: path, options: Options(fileThreshold: threshold))
            try cache.set("big", big, expiration: .milliseconds(3_600_000))
            let reader = try XCTUnwrap(try cache.reader("big"))
            XCTAssertEqual(reader.size, UInt64(big.count))
            let left = try XCTUnwrap(reader.expiresInMilliseconds)
            XCTAssertTrue(left > 0 && left <= 3_600_000)
            var got = Data()
            while let chunk = try reader.read(upTo: 100_000) {
                XCTAssertLessThanOrEqual(chunk.count, 100_000)
                got.append(chunk)
            }
            XCTAssertEqual(got, big)
            XCTAssertNil(try reader.read())  // still the end
        }
        let cache = try Storage.inMemory()
        try cache.set("k", bytes("hello"))
        let reader = try XCTUnwrap(try cache.reader("k"))
        XCTAssertNil(reader.expiresInMilliseconds)
        var got = Data()
        while let byte = try reader.read(upTo: 1) { got.append(byte) }
        XCTAssertEqual(got, bytes("hello"))
        XCTAssertEqual(try cache.stats().hits, 1)
        XCTAssertThrowsError(try reader.read(upTo: 0)) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
        }
    }

    func testAMissIsNilAndAnEmptyValueEndsAtOnce() throws {
        let cache = try Storage.inMemory()
        XCTAssertNil(try cache.reader("missing"))
        XCTAssertEqual(try cache.stats().misses, 1)
        try cache.set("empty", Data())
        let reader = try XCTUnwrap(try cache.reader("empty"))
        XCTAssertEqual(reader.size, 0)
        XCTAssertNil(try reader.read())
    }

    func testForTryAwaitHandsOverTheValueInChunksOfAtMost256KiB() async throws {
        let cache = try Storage.inMemory()
        let big = patterned(600 * 1024 + 5)
        try cache.set("big", big)
        let reader = try XCTUnwrap(try cache.reader("big"))
        var got = Data()
        var largest = 0
        for try await chunk in reader {
            largest = max(largest, chunk.count)
            got.append(chunk)
        }
        XCTAssertEqual(got, big)
        XCTAssertLessThanOrEqual(largest, 256 * 1024)
    }

    /// A task cancelled while it reads stops at its next chunk with CancellationError, not
    /// after the whole value (of any size), and never with a clean end: the value's
    /// checksum was not reached. The reader stays open where the loop stopped.
    func testACancelledTaskStopsTheLoopWithCancellationError() async throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("c.db").path
        let cache = try Storage(path: path, options: Options(fileThreshold: .bytes(4096)))
        let big = patterned(4 * ValueReader.chunkSize + 5)
        try cache.set("big", big)
        let reader = try XCTUnwrap(try cache.reader("big"))
        let task = Task { () -> Int in
            var received = 0
            for try await chunk in reader {
                received += chunk.count
                withUnsafeCurrentTask { $0?.cancel() }
            }
            return received
        }
        do {
            let received = try await task.value
            XCTFail("the cancelled task's loop ended cleanly after \(received) bytes")
        } catch is CancellationError {}
        XCTAssertEqual(try reader.readToEnd(), big.dropFirst(ValueReader.chunkSize))
    }

    /// A value whose file's last byte changed: the reads throw `.notFound`, never end
    /// cleanly, and the entry is removed.
    func testAValueDamagedAtItsEndThrowsNotFound() async throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("c.db").path
        let cache = try Storage(path: path, options: Options(fileThreshold: .bytes(4096)))
        let big = patterned(600 * 1024)
        try cache.set("big", big)
        try damageTheValueFile(path)
        let reader = try XCTUnwrap(try cache.reader("big"))
        XCTAssertThrowsError(try reader.readToEnd()) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .notFound)
        }
        XCTAssertThrowsError(try reader.read()) { error in  // and again
            XCTAssertEqual((error as? BackLiteError)?.code, .notFound)
        }
        XCTAssertFalse(try cache.contains("big"))

        try cache.set("big", big)
        try damageTheValueFile(path)
        let again = try XCTUnwrap(try cache.reader("big"))
        do {
            for try await _ in again {}
            XCTFail("a damaged value ended cleanly")
        } catch let error as BackLiteError {
            XCTAssertEqual(error.code, .notFound)
        }
    }

    /// A reader does not need its Storage: the last reference to it dropped after the
    /// open, the value still reads to its end (and valgrind sees nothing lost).
    func testReadsFromSeveralThreadsHandOverEveryByteOnce() throws {
        let cache = try Storage.inMemory()
        let value = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try cache.set("k", value)
        let reader = try XCTUnwrap(try cache.reader("k"))
        // Reads race each other (the reader serialises them): together they hand over
        // every byte once, so the lengths add up and the bytes counted match.
        let lock = NSLock()
        var total = 0
        var counts = [Int](repeating: 0, count: 256)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            while let chunk = try? reader.read(upTo: 10_000) {
                lock.lock()
                total += chunk.count
                for byte in chunk { counts[Int(byte)] += 1 }
                lock.unlock()
            }
        }
        var expected = [Int](repeating: 0, count: 256)
        for byte in value { expected[Int(byte)] += 1 }
        XCTAssertEqual(total, value.count)
        XCTAssertEqual(counts, expected)
        XCTAssertNil(try reader.read())
        reader.close()
        XCTAssertThrowsError(try reader.read()) { XCTAssertEqual(($0 as? BackLiteError)?.code, .nullParameter) }
    }

    func testAReaderOutlivesItsStorage() throws {
        let dir = try makeTemporaryDirectory(self)
        let big = patterned(600 * 1024)
        for threshold in [FileThreshold.bytes(4096), .never] {
            let path = dir.appendingPathComponent("c-\(threshold).db").path
            var cache: Storage? = try Storage(path: path, options: Options(fileThreshold: threshold))
            try cache!.set("big", big)
            let reader = try XCTUnwrap(try cache!.reader("big"))
            cache = nil
            XCTAssertEqual(try reader.readToEnd(), big)
        }
    }

    func testACloseBeforeTheEndLetsTheValueGo() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("c.db").path
        let cache = try Storage(path: path, options: Options(fileThreshold: .bytes(4096)))
        let big = patterned(600 * 1024)
        try cache.set("big", big)
        let reader = try XCTUnwrap(try cache.reader("big"))
        XCTAssertEqual(try reader.read(upTo: 10), big.prefix(10))
        reader.close()
        reader.close()
        XCTAssertThrowsError(try reader.read()) { error in
            XCTAssertEqual((error as? BackLiteError)?.code, .nullParameter)
        }
        try cache.set("big", bytes("new"))
        XCTAssertEqual(try cache.get("big"), bytes("new"))
    }

    /// The reader reads the value it opened while the key is set again, by its own
    /// handle and another, and cleared (README: "a set, delete or clear of its key does
    /// not change it"), for a value in a file and one in the database.
    func testAReaderReadsTheValueItOpenedWhileItsKeyChanges() throws {
        let dir = try makeTemporaryDirectory(self)
        for threshold in [FileThreshold.bytes(4096), .never] {
            let path = dir.appendingPathComponent("c-\(threshold).db").path
            let cache = try Storage(path: path, options: Options(fileThreshold: threshold))
            let other = try Storage(path: path, options: Options(fileThreshold: threshold))
            let old = blocks(3 * ValueReader.chunkSize + 11, seed: 1)
            let new = blocks(3 * ValueReader.chunkSize + 11, seed: 2)
            try cache.set("k", old)
            let reader = try XCTUnwrap(try cache.reader("k"))
            var got = try XCTUnwrap(try reader.read())
            try other.set("k", new)
            XCTAssertEqual(try cache.get("k"), new)
            got.append(try XCTUnwrap(try reader.read()))
            try cache.set("k", old.prefix(10))
            try other.clear()
            got.append(try reader.readToEnd())
            XCTAssertEqual(got, old, "\(threshold)")
        }
    }

    /// A value another handle wrote through the C API, in five sink writes, reads back
    /// whole by every Swift path; and one Swift wrote opens in C's reader at its size.
    func testAValueWrittenThroughTheCAPIReadsBackInEveryWay() async throws {
        let dir = try makeTemporaryDirectory(self)
        let thresholds: [(FileThreshold, Int64)] = [
            (.bytes(4096), 4096), (.never, Int64(BACKLITE_FILE_THRESHOLD_NEVER)), (.bytes(1 << 30), 1 << 30),
        ]
        let expected = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 9) })
        for (threshold, cThreshold) in thresholds {
            let path = dir.appendingPathComponent("c-\(threshold).db").path
            let cache = try Storage(path: path, options: Options(fileThreshold: threshold))
            var h: OpaquePointer?
            let o = backlite_options_new()
            XCTAssertEqual(backlite_options_set_file_threshold(o, cThreshold), BACKLITE_RESULT_OK)
            XCTAssertEqual(backlite_storage_open(path, o, &h, nil), BACKLITE_RESULT_OK)
            backlite_options_free(o)
            defer { backlite_storage_free(h) }
            var buf = backlite_buf()
            let key = Array("c-key".utf8)
            let r = backlite_cached_call(h, key, key.count, { _, sink in
                var piece = [UInt8](repeating: 0, count: 60_000)
                for p in 0..<5 {
                    for i in 0..<piece.count { piece[i] = UInt8(truncatingIfNeeded: (p * 60_000 + i) &* 131 &+ 9) }
                    if backlite_sink_write(sink, piece, piece.count) != BACKLITE_RESULT_OK { return 1 }
                }
                return 0
            }, nil, nil, Int64(BACKLITE_EXPIRATION_NEVER), &buf, nil)
            XCTAssertEqual(r, BACKLITE_RESULT_OK)
            backlite_buf_free(&buf)
            XCTAssertEqual(try cache.get("c-key"), expected)
            let reader = try XCTUnwrap(try cache.reader("c-key"))
            XCTAssertEqual(reader.size, 300_000)
            var got = Data()
            for try await chunk in reader { got.append(chunk) }
            XCTAssertEqual(got, expected)
            var chunks = Data()
            XCTAssertTrue(try cache.forEachChunk(of: "c-key") { chunks.append($0) })
            XCTAssertEqual(chunks, expected)

            try cache.set("s-key", expected.prefix(280_001))
            var cReader: OpaquePointer?
            let sKey = Array("s-key".utf8)
            XCTAssertEqual(backlite_storage_open_reader(h, sKey, sKey.count, &cReader, nil, nil, nil), BACKLITE_RESULT_OK)
            XCTAssertEqual(backlite_value_reader_size(cReader), 280_001)
            backlite_value_reader_free(cReader)
        }
    }
}
