/// A remote URL as `Options` show it, by the library's rule (core/src/remote/url.rs,
/// `redact`), so that what the binding prints hides what the library's messages hide.
/// It works on the UTF-8 bytes: every delimiter is ASCII, so every cut falls between
/// characters.
enum MaskedURL {
    /// `url` with the password of its user-info (after the user name, or all of it when
    /// it has no ':') and any query replaced by `***`; when a '?' comes before the
    /// user-info's end, everything from the first of them on. Without a user-info, a
    /// port that is no number (a password written without its "@host") is masked; in a
    /// URL without "://", everything from its first ':' to its last '@' (or its end).
    static func of(_ url: String) -> String {
        let text = Array(url.utf8)
        if let hidden = withoutSlashes(text) {
            return string(text, 0..<hidden.lowerBound) + "***" + string(text, hidden.upperBound..<text.count)
        }
        let query = text.firstIndex(of: UInt8(ascii: "?"))
        var secret: Range<Int>?
        if let info = userInfo(text) {
            if let colon = text[info].firstIndex(of: UInt8(ascii: ":")) {
                secret = (colon + 1)..<info.upperBound
            } else if !info.isEmpty {
                secret = info
            }
        }
        switch (secret, query) {
        case let (secret?, q?) where q < secret.upperBound:
            return string(text, 0..<min(secret.lowerBound, q)) + "***"
        case let (secret?, _):
            let head = string(text, 0..<secret.lowerBound) + "***"
            if let q = text[secret.upperBound...].firstIndex(of: UInt8(ascii: "?")) {
                return head + string(text, secret.upperBound..<q) + "?***"
            }
            return head + string(text, secret.upperBound..<text.count)
        case let (nil, q?):
            return maskingBarePorts(Array(text[0..<q]) + Array("?***".utf8))
        case (nil, nil):
            return maskingBarePorts(text)
        }
    }

    private static func string(_ text: [UInt8], _ range: Range<Int>) -> String {
        String(decoding: text[range], as: UTF8.self)
    }

    /// Where the authority begins: just after the first "://".
    private static func authorityStart(_ text: [UInt8]) -> Int? {
        let separator = Array("://".utf8)
        guard text.count >= separator.count else { return nil }
        for i in 0...(text.count - separator.count) where text[i..<(i + separator.count)].elementsEqual(separator) {
            return i + separator.count
        }
        return nil
    }

    /// The user-info: from after "://" to the last '@'; none for a socket path
    /// (`redis+unix:///...`). Up to the last '@', so that a password written with a bare
    /// '/', '?' or '#' is masked whole.
    private static func userInfo(_ text: [UInt8]) -> Range<Int>? {
        guard let start = authorityStart(text), start < text.count, text[start] != UInt8(ascii: "/"),
              let at = text[start...].lastIndex(of: UInt8(ascii: "@")) else {
            return nil
        }
        return start..<at
    }

    /// In a URL without "://" (`redis:secret@host`), where a password may be cannot be
    /// told: from after its first ':' up to its last '@' (or its end).
    private static func withoutSlashes(_ text: [UInt8]) -> Range<Int>? {
        guard authorityStart(text) == nil, let colon = text.firstIndex(of: UInt8(ascii: ":")) else {
            return nil
        }
        let from = colon + 1
        let to = text.lastIndex(of: UInt8(ascii: "@")).flatMap { $0 >= from ? $0 : nil } ?? text.count
        return to > from ? from..<to : nil
    }

    /// `text` with every port of its authority that is no number (`redis://user:secret`,
    /// a password without its "@host") replaced by `***`; as it is when it has a
    /// user-info.
    private static func maskingBarePorts(_ text: [UInt8]) -> String {
        guard let start = authorityStart(text) else { return string(text, 0..<text.count) }
        let delimiters: Set<UInt8> = [UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "#")]
        let end = text[start...].firstIndex(where: delimiters.contains) ?? text.count
        guard !text[start..<end].contains(UInt8(ascii: "@")) else { return string(text, 0..<text.count) }
        var ports: [Range<Int>] = []
        var host = start
        while host <= end {
            let hostEnd = text[host..<end].firstIndex(of: UInt8(ascii: ",")) ?? end
            // After an IPv6 address's ']', if any: its own colons are no port.
            let tail = text[host..<hostEnd].lastIndex(of: UInt8(ascii: "]")).map { $0 + 1 } ?? host
            if let colon = text[tail..<hostEnd].lastIndex(of: UInt8(ascii: ":")) {
                let port = (colon + 1)..<hostEnd
                if !port.isEmpty, !text[port].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                    ports.append(port)
                }
            }
            host = hostEnd + 1
        }
        var out = text
        for port in ports.reversed() {
            out.replaceSubrange(port, with: Array("***".utf8))
        }
        return string(out, 0..<out.count)
    }
}
