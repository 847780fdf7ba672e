import BackLite
import Foundation
import XCTest

final class LifetimeStatsTests: XCTestCase {
    func testLifetimeStatsCountEveryHandleAndSurviveReopening() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("c.db").path
        let before = Date().addingTimeInterval(-1)
        do {
            let a = try Storage(path: path)
            let b = try Storage(path: path)
            try a.set("k", bytes("v"))
            XCTAssertNotNil(try a.get("k"))
            XCTAssertNil(try a.get("missing"))
            XCTAssertNotNil(try b.get("k"))
        } // both handles closed: their hits and misses are written
        let c = try Storage(path: path)
        let s = try c.lifetimeStats()
        XCTAssertEqual(s.hits, 2)
        XCTAssertEqual(s.misses, 1)
        XCTAssertEqual(s.evictions, 0)
        XCTAssertEqual(s.expirations, 0)
        XCTAssertGreaterThanOrEqual(s.since, before)
        XCTAssertLessThanOrEqual(s.since, Date())
    }

    func testZeroStatsStartsCountingAgainAndKeepsTheHandlesCounters() throws {
        let cache = try Storage(path: try makeTemporaryDirectory(self)
            .appendingPathComponent("c.db").path)
        try cache.set("k", bytes("v"))
        XCTAssertNotNil(try cache.get("k"))
        let before = Date().addingTimeInterval(-1)
        try cache.zeroStats()
        let s = try cache.lifetimeStats()
        XCTAssertEqual(s.hits, 0)
        XCTAssertEqual(s.misses, 0)
        XCTAssertGreaterThanOrEqual(s.since, before)
        XCTAssertNil(try cache.get("gone"))
        XCTAssertEqual(try cache.lifetimeStats().misses, 1)
        XCTAssertEqual(try cache.stats().hits, 1)
    }
}
