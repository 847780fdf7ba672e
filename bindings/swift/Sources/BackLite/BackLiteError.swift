import CBackLite
import Foundation

/// A failed BackLite call: the C result code and the library's message.
///
/// Match a code with `catch let error as BackLiteError where error.code == .tooLarge`,
/// or directly with `catch BackLiteError.tooLarge`.
public struct BackLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A C result code (`BACKLITE_RESULT_*`).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        public static let notFound = Code(rawValue: BACKLITE_RESULT_NOT_FOUND)
        public static let nullParameter = Code(rawValue: BACKLITE_RESULT_NULL_PARAMETER)
        public static let invalidArgument = Code(rawValue: BACKLITE_RESULT_INVALID_ARGUMENT)
        public static let io = Code(rawValue: BACKLITE_RESULT_IO)
        public static let notACache = Code(rawValue: BACKLITE_RESULT_NOT_A_CACHE)
        public static let corrupt = Code(rawValue: BACKLITE_RESULT_CORRUPT)
        public static let busy = Code(rawValue: BACKLITE_RESULT_BUSY)
        public static let tooLarge = Code(rawValue: BACKLITE_RESULT_TOO_LARGE)
        public static let callbackFailed = Code(rawValue: BACKLITE_RESULT_CALLBACK_FAILED)
        public static let incompatible = Code(rawValue: BACKLITE_RESULT_INCOMPATIBLE)
        public static let panic = Code(rawValue: BACKLITE_RESULT_PANIC)
        public static let `internal` = Code(rawValue: BACKLITE_RESULT_INTERNAL)
        public static let leaseLost = Code(rawValue: BACKLITE_RESULT_LEASE_LOST)
        public static let leaseHeld = Code(rawValue: BACKLITE_RESULT_LEASE_HELD)

        /// The library's static description of the code.
        public var description: String { String(cString: backlite_result_str(rawValue)) }

        /// `catch BackLiteError.Code.busy` (or `catch BackLiteError.busy`).
        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? BackLiteError)?.code == code
        }
    }

    public let code: Code
    public let message: String
    /// For `.leaseHeld`: the holder's lease time left in milliseconds (it renews the
    /// lease while it computes); nil for other codes.
    public let leaseTimeLeftMilliseconds: Int64?

    public init(code: Code, message: String, leaseTimeLeftMilliseconds: Int64? = nil) {
        self.code = code
        self.message = message
        self.leaseTimeLeftMilliseconds = leaseTimeLeftMilliseconds
    }

    public var description: String { "BackLite error \(code.rawValue) (\(code)): \(message)" }

    public static let notFound = Code.notFound
    public static let nullParameter = Code.nullParameter
    public static let invalidArgument = Code.invalidArgument
    public static let io = Code.io
    public static let notACache = Code.notACache
    public static let corrupt = Code.corrupt
    public static let busy = Code.busy
    public static let tooLarge = Code.tooLarge
    public static let callbackFailed = Code.callbackFailed
    public static let incompatible = Code.incompatible
    public static let panic = Code.panic
    public static let `internal` = Code.internal
    public static let leaseLost = Code.leaseLost
    public static let leaseHeld = Code.leaseHeld
}

/// `error.localizedDescription` is `description` (code and message): Foundation's
/// default for a plain `Error` struct names neither.
extension BackLiteError: LocalizedError {
    public var errorDescription: String? { description }
}

extension BackLiteError {
    /// This error with the library's `entries[i]` (the place of a failing entry in the
    /// array the binding built from a dictionary, an order its caller never saw)
    /// replaced by `values[<the key>]`; as it was when the message names no entry.
    func namingEntry(_ key: (Int) -> String?) -> BackLiteError {
        let prefix = "entries["
        guard message.hasPrefix(prefix), let close = message.firstIndex(of: "]"),
              let index = Int(message[message.index(message.startIndex, offsetBy: prefix.count)..<close]),
              let key = key(index) else {
            return self
        }
        // A key of any length may be passed; its first 64 characters name it well enough.
        let shown = key.count > 64 ? String(key.prefix(64)) + "..." : key
        let named = "values[\(String(reflecting: shown))]" + message[message.index(after: close)...]
        return BackLiteError(code: code, message: named, leaseTimeLeftMilliseconds: leaseTimeLeftMilliseconds)
    }
}

/// Takes ownership of `err` (which may be NULL) and makes a `BackLiteError` for `result`.
func makeError(_ result: backlite_result, _ err: OpaquePointer?) -> BackLiteError {
    defer { backlite_error_free(err) }
    let code = BackLiteError.Code(rawValue: result)
    let message = err.map { String(cString: backlite_error_message($0)) } ?? code.description
    let left = backlite_error_lease_time_left_ms(err)
    return BackLiteError(code: code, message: message, leaseTimeLeftMilliseconds: left >= 0 ? left : nil)
}

/// Calls `body` with an error out-parameter; throws unless it returns OK.
func cCall(_ body: (UnsafeMutablePointer<OpaquePointer?>) -> backlite_result) throws {
    var err: OpaquePointer?
    let result = body(&err)
    if result != BACKLITE_RESULT_OK { throw makeError(result, err) }
}
