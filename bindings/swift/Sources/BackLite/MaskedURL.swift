import CBackLite
import Foundation

/// A remote URL as `Options` show it: the library's own masking
/// (`backlite_remote_url_masked`), so that what the binding prints hides what the
/// library's messages hide, by one rule kept in one place.
enum MaskedURL {
    /// `url` with its password (and any query, or whatever may be a password in a URL
    /// the library refuses) replaced by `***`. A NUL byte, which `Options` refuse and a
    /// C string cannot carry, is shown as U+FFFD: no delimiter of a URL, so the rule
    /// masks the same parts, and the text after it is not cut off unmasked.
    static func of(_ url: String) -> String {
        let text = url.utf8.contains(0) ? url.replacingOccurrences(of: "\0", with: "\u{FFFD}") : url
        var buf = backlite_buf()
        let r = text.withCString { backlite_remote_url_masked($0, &buf, nil) }
        // Only out of memory fails here (a Swift string is UTF-8): show nothing of it.
        guard r == BACKLITE_RESULT_OK else { return "***" }
        return String(decoding: takeData(&buf), as: UTF8.self)
    }
}
