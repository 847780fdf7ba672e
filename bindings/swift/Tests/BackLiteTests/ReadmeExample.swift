import BackLite
import Foundation

/// Stands in for the README's expensive async work.
func buildReport() async throws -> Data {
    try await Task.sleep(nanoseconds: 1_000_000)
    return Data("report".utf8)
}

/// The README's example, verbatim (ReadmeTests checks that they agree), run in a fresh
/// directory by ReadmeTests.
func readmeExample() throws {
    let cache = try Storage(path: "cache.db", options: Options(maxSize: 64 << 20, evictionPolicy: .leastRecentlyUsed))

    try cache.set("greeting", Data("hello".utf8), expiration: .seconds(60))
    if let value = try cache.get("greeting") {
        print(String(decoding: value, as: UTF8.self))
    }

    do {
        try cache.set("big", Data(count: 128 << 20))
    } catch let error as BackLiteError where error.code == .tooLarge {
        print("not stored: \(error.message)")
    }

    // Computed once, then answered from cache.db (also by the next runs).
    let answer = try cache.cached(key: "answer", expiration: .never) {
        Data("42".utf8)
    }
    print(String(decoding: answer, as: UTF8.self))
}

/// The README's async example, verbatim.
func readmeAsyncExample(cache: Storage) async throws {
    // Many tasks at once, in any number of processes: one computes, the others await
    // its value without blocking a thread.
    let report = try await cache.cached(key: "report", expiration: .seconds(300)) {
        try await buildReport()
    }
    print(report.count)
}

/// The README's reader example, verbatim.
func readmeReaderExample(cache: Storage) async throws {
    // A value of any size, pulled in chunks of at most 256 KiB: bounded memory.
    if let reader = try cache.reader("greeting") {
        var received = 0
        for try await chunk in reader {
            received += chunk.count  // write it to a file, a socket...
        }
        print(received)  // a value found damaged throws BackLiteError.notFound instead
    }
}
