import CBackLite
import Foundation

/// One value read in bounded memory, from `Storage.reader(_:)`: each `read(upTo:)`
/// copies the next bytes of the value (`backlite_value_reader_read`), and
/// `for try await chunk in reader` hands it over in `Data` chunks of at most 256 KiB.
///
/// The value read is the one opened: a set, delete or clear of its key meanwhile does
/// not change it. The value's checksum is checked at its end. A value found damaged
/// there is never a clean end: the read throws
/// `BackLiteError.notFound` (drop what was read; the entry has been removed, as `get`
/// would remove it). It is an `AsyncSequence`, not a `Sequence`, because an iterator
/// that cannot throw could only report that damage as an end. In a cancelled task the
/// loop throws `CancellationError` at its next chunk; the reader stays open there.
///
/// The library's reader is freed at the end, on a failure, by `close()` or in
/// `deinit`; until then it holds an open value file, or a read snapshot of the database
/// for a large value kept there. It does not need its `Storage` to stay alive. Calls
/// from several threads are serialised; which of them gets which bytes is theirs to
/// arrange.
public final class ValueReader: @unchecked Sendable {
    /// The chunk size of the `AsyncSequence`: the library's own.
    public static let chunkSize = 256 * 1024

    private var handle: OpaquePointer?
    private var failure: BackLiteError?
    private let lock = NSLock()

    /// The value's length in bytes.
    public let size: UInt64
    /// Milliseconds the entry had left when the reader was opened; nil: never.
    public let expiresInMilliseconds: Int64?

    init(_ handle: OpaquePointer, expiresInMilliseconds: Int64) {
        self.handle = handle
        size = backlite_value_reader_size(handle)
        self.expiresInMilliseconds = expiresInMilliseconds < 0 ? nil : expiresInMilliseconds
    }

    deinit { backlite_value_reader_free(handle) }

    /// The next bytes of the value, at most `count` (> 0); nil at the end, where the
    /// value's checksum matched. Throws `.notFound` when the value proved damaged (and
    /// again on every later call), `.invalidArgument` for a `count` below
    /// 1, `.nullParameter` after `close()`.
    public func read(upTo count: Int = ValueReader.chunkSize) throws -> Data? {
        guard count > 0 else {
            throw BackLiteError(code: .invalidArgument, message: "read(upTo:): count must be at least 1")
        }
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw failure }
        guard let h = handle else { return nil }
        var chunk = Data(count: Swift.min(count, Int(clamping: Swift.max(size, 1))))
        var n = 0
        var err: OpaquePointer?
        let r = chunk.withUnsafeMutableBytes { buf in
            backlite_value_reader_read(h, buf.baseAddress!.assumingMemoryBound(to: UInt8.self), buf.count, &n, &err)
        }
        if r == BACKLITE_RESULT_OK && n > 0 {
            chunk.count = n
            return chunk
        }
        // The end or a failure: the library's reader is no longer needed.
        backlite_value_reader_free(h)
        handle = nil
        if r == BACKLITE_RESULT_OK { return nil }
        let error = r == BACKLITE_RESULT_NOT_FOUND
            ? BackLiteError(code: .notFound,
                            message: "the value proved damaged at its end; its entry is removed")
            : makeError(r, err)
        if r == BACKLITE_RESULT_NOT_FOUND { backlite_error_free(err) }  // NULL; freed all the same
        failure = error
        throw error
    }

    /// The rest of the value in one `Data` (for values known to fit in memory).
    public func readToEnd() throws -> Data {
        var all = Data()
        while let chunk = try read() { all.append(chunk) }
        return all
    }

    /// Frees the library's reader now; later reads throw `.nullParameter`. Closing
    /// twice, or after the end, is harmless.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        backlite_value_reader_free(handle)
        handle = nil
        if failure == nil {
            failure = BackLiteError(code: .nullParameter, message: "the reader is closed")
        }
    }
}

extension ValueReader: AsyncSequence {
    public typealias Element = Data

    public struct AsyncIterator: AsyncIteratorProtocol {
        let reader: ValueReader

        /// Throws `CancellationError` once the task is cancelled, between two chunks:
        /// an end (nil) would pass what was read for the whole value, unchecked.
        public mutating func next() async throws -> Data? {
            try Task.checkCancellation()
            return try reader.read()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reader: self) }
}

extension Storage {
    /// A reader of the value under `key`, to pull it in bounded memory at the caller's
    /// pace; nil on a miss. The open is the look-up (a hit counts as an access, as for
    /// `get`); the bytes come with the reads.
    public func reader(_ key: some BackLiteKey) throws -> ValueReader? {
        var h: OpaquePointer?
        var left: Int64 = 0
        var err: OpaquePointer?
        let r = withKey(key) { backlite_storage_open_reader(handle, $0, $1, &h, nil, &left, &err) }
        if r == BACKLITE_RESULT_NOT_FOUND {
            backlite_error_free(err)  // NULL on a miss; freed all the same, so no miss can leak
            return nil
        }
        if r != BACKLITE_RESULT_OK { throw makeError(r, err) }
        return ValueReader(h!, expiresInMilliseconds: left)
    }
}
