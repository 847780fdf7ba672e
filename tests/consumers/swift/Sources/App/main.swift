// A set/get round trip through the Swift package, and the async memoiser called from a
// @MainActor type and from an actor whose compute uses the actor's state: code that the
// Swift 6 language mode must accept.
import BackLite
import Foundation

let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "app.db"
let cache = try Storage(path: path)
try cache.set("greeting", Data("hello from Swift".utf8), expiration: .never)
guard let value = try cache.get("greeting"), value == Data("hello from Swift".utf8) else {
    fatalError("app: got back something else than was set")
}

@MainActor
final class Screen {
    let cache: Storage
    var computed = 0
    init(cache: Storage) { self.cache = cache }

    func load() async throws -> Data {
        try await cache.cached(key: "screen", expiration: .seconds(60)) {
            computed += 1
            return Data("screen".utf8)
        }
    }
}

/// No stored Storage here: the handle comes with each call, from the main actor.
actor Worker {
    private(set) var computed = 0

    func load(from cache: Storage) async throws -> Data {
        try await cache.cached(key: "worker") { computed += 1; return Data("worker".utf8) }
    }
}

try cache.delete("screen")
try cache.delete("worker")
let screen = Screen(cache: cache)
let worker = Worker()
for _ in 0..<2 {
    guard try await screen.load() == Data("screen".utf8), try await worker.load(from: cache) == Data("worker".utf8) else {
        fatalError("app: the async memoiser answered something else")
    }
}
let workerComputed = await worker.computed
guard screen.computed == 1, workerComputed == 1 else {
    fatalError("app: computed \(screen.computed) and \(workerComputed) times, not once each")
}
print(String(decoding: value, as: UTF8.self))
