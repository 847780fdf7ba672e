// A set/get round trip through the Swift package.
import BackLite
import Foundation

let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "app.db"
let cache = try Storage(path: path)
try cache.set("greeting", Data("hello from Swift".utf8), expiration: .never)
guard let value = try cache.get("greeting"), value == Data("hello from Swift".utf8) else {
    fatalError("app: got back something else than was set")
}
print(String(decoding: value, as: UTF8.self))
