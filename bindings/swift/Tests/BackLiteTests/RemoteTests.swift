import BackLite
import Foundation
import XCTest

/// The remote tier option. The Swift suite runs in a Debian 13 chroot without a
/// redis-server, so it checks the option's validation and an unreachable remote (open
/// succeeds, every call stays local); the C, Rust, C++, Go, Python and Zig suites run
/// against real servers.
final class RemoteTests: XCTestCase {
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
}
