import BackLite
import Foundation
import XCTest

/// The remote tier: the option's validation, an unreachable remote (open succeeds, every
/// call stays local), and read- and write-through against a real redis-server. The
/// suite runs in a Debian 13 chroot that shares the host's network, so run_tests.sh
/// starts the server on the host and passes its port in BACKLITE_TEST_REDIS_PORT.
final class RemoteTests: XCTestCase {
    func testValuesTravelBetweenTwoFilesThroughARealServer() throws {
        guard let port = ProcessInfo.processInfo.environment["BACKLITE_TEST_REDIS_PORT"] else {
            throw XCTSkip("BACKLITE_TEST_REDIS_PORT is not set: no redis-server (run_tests.sh starts one)")
        }
        let dir = try makeTemporaryDirectory(self)
        let options = Options(remote: "redis://127.0.0.1:\(port)", remoteNamespace: "swift-\(UUID().uuidString)",
                              remoteTimeoutMilliseconds: 2000)
        let a = try Storage(path: dir.appendingPathComponent("a.db").path, options: options)
        let b = try Storage(path: dir.appendingPathComponent("b.db").path, options: options)
        XCTAssertTrue(try a.remoteStats().connected)
        // Written through by one file, read through by the other.
        try a.set("from a", bytes("a's value"), expiration: .never)
        XCTAssertEqual(try b.get("from a"), bytes("a's value"))
        try b.set("from b", bytes("b's value"), expiration: .never)
        XCTAssertEqual(try a.get("from b"), bytes("b's value"))
        for cache in [a, b] {
            let stats = try cache.remoteStats()
            XCTAssertEqual(stats.hits, 1)
            XCTAssertEqual(stats.errors, 0)
        }
        // A delete reaches the remote: a third file misses.
        XCTAssertTrue(try a.delete("from b"))
        let c = try Storage(path: dir.appendingPathComponent("c.db").path, options: options)
        XCTAssertNil(try c.get("from b"))
        XCTAssertEqual(try c.get("from a"), bytes("a's value"))
    }

    func testBadRemoteOptionsThrowInvalidArgument() throws {
        let bad: [Options] = [
            Options(remote: "memcache://h:1"),
            Options(remote: "redis://h:notaport"),
            Options(remote: "redis://h:1", remoteNamespace: "with space"),
            Options(remote: "redis://h:1", remoteTimeoutMilliseconds: 0),
        ]
        for options in bad {
            XCTAssertThrowsError(try Storage.inMemory(options: options)) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
            }
        }
    }

    func testAnUnreachableRemoteStillOpensAndEveryCallSucceedsLocally() throws {
        let options = Options(remote: "redis://127.0.0.1:1", remoteNamespace: "swift",
                              remoteTimeoutMilliseconds: 100, remoteMode: .writeBehind)
        let cache = try Storage.inMemory(options: options)
        try cache.set("k", bytes("v"), expiration: .never)
        XCTAssertEqual(try cache.get("k"), bytes("v"))
        let stats = try cache.remoteStats()
        XCTAssertFalse(stats.connected)
        XCTAssertEqual(stats.hits, 0)
        for mode in [RemoteMode.readWrite, .readOnly] {
            _ = try Storage.inMemory(options: Options(remote: "redis://127.0.0.1:1", remoteMode: mode))
        }
    }

    /// Printed, logged or dumped, options show the remote URL with its password (and a
    /// query, which may carry one) masked, by the library's rule: a struct's default
    /// description printed the whole URL.
    func testOptionsShowTheRemoteURLWithItsPasswordMasked() throws {
        let shown: [(String, String)] = [
            ("redis://user:s3cret@127.0.0.1:1/2", "redis://user:***@127.0.0.1:1/2"),
            ("rediss://s3cret@h", "rediss://***@h"),
            ("redis://:s3cret@h:6379", "redis://:***@h:6379"),
            ("redis://u:p@ss:s3cret@h", "redis://u:***@h"),
            ("redis+unix:///tmp/r.sock?pass=s3cret", "redis+unix:///tmp/r.sock?***"),
            ("redis://u:x?s3cret@h", "redis://u:***"),
            ("redis://h:1", "redis://h:1"),
            ("redis+cluster://a:1,b:2", "redis+cluster://a:1,b:2"),
        ]
        for (url, masked) in shown {
            let options = Options(maxSize: 7, remote: url, remoteMode: .readOnly)
            var dumped = ""
            dump(options, to: &dumped)
            for text in ["\(options)", String(reflecting: options), dumped] {
                XCTAssertFalse(text.contains("s3cret"), text)
                XCTAssertTrue(text.contains(masked), text)
            }
            XCTAssertEqual("\(options)", "Options(maxSize: 7, remote: \"\(masked)\", remoteMode: readOnly)")
        }
        XCTAssertEqual("\(Options())", "Options()")
    }

    /// A mistyped URL, which the library refuses, is the one most likely to be printed
    /// while someone looks for the mistake: its password is masked where the library's
    /// rule masks it (a "port" that is no number is a password without its "@host"; in
    /// a URL without "://", everything from its first ':' to its last '@').
    func testAMistypedRemoteURLIsShownWithItsPasswordMasked() throws {
        let shown: [(String, String)] = [
            ("redis://:s3cret", "redis://:***"),
            ("redis://u:s3cret", "redis://u:***"),
            ("redis://u:s3cret/0", "redis://u:***/0"),
            ("rediss://u:s3cret?x=1", "rediss://u:***?***"),
            ("redis+cluster://h:1,u:s3cret", "redis+cluster://h:1,u:***"),
            ("redis:s3cret@h", "redis:***@h"),
            ("redis//u:s3cret@h", "redis//u:***@h"),
            ("redis:u:s3cret", "redis:***"),
            ("redis://[::1]:s3cret", "redis://[::1]:***"),
            // A C string ends at a NUL: the password after it is still masked.
            ("redis://u:\0s3cret@h", "redis://u:***@h"),
        ]
        for (url, masked) in shown {
            let options = Options(remote: url)
            XCTAssertEqual("\(options)", "Options(remote: \"\(masked)\")", url)
            XCTAssertThrowsError(try Storage.inMemory(options: options), url) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument, url)
            }
        }
        // An IPv6 address's colons are no port: nothing to hide.
        XCTAssertEqual("\(Options(remote: "redis://[::1]:6379"))", "Options(remote: \"redis://[::1]:6379\")")
    }

    /// Namespaces: 1 to 64 of the allowed characters; a namespace without a remote is
    /// harmless, and an empty remote is none (all stats zero).
    func testRemoteNamespacesAreCheckedAndAnEmptyRemoteIsNone() throws {
        let remote = "redis://127.0.0.1:1"
        for ns in [String(repeating: "n", count: 64), "a.b_c-d:e/f", "A9"] {
            XCTAssertNoThrow(try Storage.inMemory(options: Options(remote: remote, remoteNamespace: ns,
                                                                   remoteTimeoutMilliseconds: 50)), ns)
        }
        for ns in [String(repeating: "n", count: 65), "", "a\0b", "é", "a b"] {
            XCTAssertThrowsError(try Storage.inMemory(options: Options(remote: remote, remoteNamespace: ns)), ns) { error in
                XCTAssertEqual((error as? BackLiteError)?.code, .invalidArgument)
                XCTAssertTrue((error as? BackLiteError)?.message.contains("remoteNamespace") ?? false)
            }
        }
        XCTAssertNoThrow(try Storage.inMemory(options: Options(remoteNamespace: "ns")))
        let none = try Storage.inMemory(options: Options(remote: ""))
        try none.set("k", bytes("v"))
        XCTAssertEqual(try none.get("k"), bytes("v"))
        let stats = try none.remoteStats()
        XCTAssertEqual([stats.hits, stats.misses, stats.writes, stats.errors, stats.skipped], [0, 0, 0, 0, 0])
        XCTAssertFalse(stats.connected)
    }

    /// Every remote option reaches the library, against a real server: a read-only file
    /// reads through (with the time left) and writes nothing, a write-behind file's set
    /// arrives, another namespace or version tag sees nothing, a large value read
    /// through streams whole, and a clear reaches the remote.
    func testRemoteModesNamespacesAndVersionTagsAgainstARealServer() throws {
        guard let port = ProcessInfo.processInfo.environment["BACKLITE_TEST_REDIS_PORT"] else {
            throw XCTSkip("BACKLITE_TEST_REDIS_PORT is not set: no redis-server (run_tests.sh starts one)")
        }
        let dir = try makeTemporaryDirectory(self)
        let ns = "swift-\(UUID().uuidString)"
        func open(_ name: String, _ mode: RemoteMode? = nil, namespace: String? = nil, tag: String? = nil) throws -> Storage {
            try Storage(path: dir.appendingPathComponent(name).path,
                        options: Options(versionTag: tag, remote: "redis://127.0.0.1:\(port)",
                                         remoteNamespace: namespace ?? ns, remoteTimeoutMilliseconds: 2000,
                                         remoteMode: mode))
        }
        let readWrite = try open("rw.db", .readWrite)
        let readOnly = try open("ro.db", .readOnly)
        let writeBehind = try open("wb.db", .writeBehind)
        let otherNamespace = try open("ns.db", namespace: ns + "-other")
        let otherTag = try open("tag.db", tag: "v2")
        try readWrite.set("k1", bytes("one"), expiration: .seconds(600))
        let item = try XCTUnwrap(try readOnly.item("k1"))
        XCTAssertEqual(item.value, bytes("one"))
        let left = try XCTUnwrap(item.expiresInMilliseconds)
        XCTAssertTrue(left > 0 && left <= 600_000, "\(left)")
        XCTAssertNil(try otherNamespace.get("k1"))
        XCTAssertNil(try otherTag.get("k1"))

        try readOnly.set("k2", bytes("two"))
        XCTAssertEqual(try readOnly.remoteStats().writes, 0)
        XCTAssertNil(try readWrite.get("k2"))

        try writeBehind.set("k3", bytes("three"))
        let deadline = Date().addingTimeInterval(30)
        var arrived = try readWrite.get("k3")
        while arrived == nil && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
            arrived = try readWrite.get("k3")
        }
        XCTAssertEqual(arrived, bytes("three"))

        let big = Data((0..<700_000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 5) })
        try readWrite.set("big", big)
        let reader = try XCTUnwrap(try readOnly.reader("big"))
        XCTAssertEqual(try reader.readToEnd(), big)

        try readWrite.clear()
        let fresh = try open("fresh.db")
        XCTAssertNil(try fresh.get("k1"))
        XCTAssertNil(try fresh.get("big"))
        XCTAssertEqual(try readWrite.remoteStats().errors, 0)
    }
}
