import Foundation

/// A cache key: arbitrary bytes. `String` and `Substring` (their UTF-8, unnormalised), `Data` and `[UInt8]` are keys.
public protocol BackLiteKey {
    func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Data: BackLiteKey {
    public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}

extension Array: BackLiteKey where Element == UInt8 {
    public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}

extension String: BackLiteKey {
    public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: BackLiteKey {
    public func withKeyBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try String(self).withKeyBytes(body)
    }
}

extension UnsafeRawBufferPointer {
    /// The C view of these bytes: a typed pointer (NULL when empty) and a length.
    var cBytes: UnsafePointer<UInt8>? { count == 0 ? nil : baseAddress?.assumingMemoryBound(to: UInt8.self) }
}

/// Calls `body` with the bytes of `data` as the C API takes them.
func withBytes<R>(_ data: Data, _ body: (UnsafePointer<UInt8>?, Int) throws -> R) rethrows -> R {
    try data.withUnsafeBytes { try body($0.cBytes, $0.count) }
}

/// Calls `body` with the bytes of `key` as the C API takes them.
func withKey<R>(_ key: some BackLiteKey, _ body: (UnsafePointer<UInt8>?, Int) throws -> R) rethrows -> R {
    try key.withKeyBytes { try body($0.cBytes, $0.count) }
}
