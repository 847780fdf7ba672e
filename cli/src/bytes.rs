//! Keys and values are arbitrary bytes. For people they are shown as text with the
//! unprintable bytes escaped (`\xNN`, `\n`, `\\`), which `--escaped` reads back; in
//! JSON they are a string when they are UTF-8 and base64 otherwise.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Value};

/// The bytes as text, with control characters, characters that show as nothing or
/// reorder the line (see `unseen`), backslashes and invalid UTF-8 escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || unseen(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    // A space at either end shows as nothing at the end of a line, or as the column's
    // margin: `a ` looked like `a`, and ` ` like the empty key.
    let inner = out.trim_matches(' ');
    if inner.len() == out.len() {
        return out;
    }
    let start = out.len() - out.trim_start_matches(' ').len();
    let end = out.trim_end_matches(' ').len().max(start);
    format!(
        "{}{}{}",
        "\\x20".repeat(start),
        &out[start..end],
        "\\x20".repeat(out.len() - end)
    )
}

/// `escape(bytes)`, or when that is longer than `max` characters, the escaped form of
/// the longest start of `bytes` that fits, cut between characters (never inside one
/// or inside an escape), and whether it was cut.
pub fn escape_start(bytes: &[u8], max: usize) -> (String, bool) {
    let whole = escape(bytes);
    if whole.chars().count() <= max {
        return (whole, false);
    }
    // Each character (or byte that is not UTF-8) with its escaped width, alone; a space
    // alone is escaped, so the width is never less than its width in the whole.
    let mut shown = 0;
    let mut end = 0;
    'pieces: for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let pieces = valid
            .char_indices()
            .map(|(at, c)| &valid.as_bytes()[at..at + c.len_utf8()])
            .chain(chunk.invalid().chunks(1));
        for piece in pieces {
            let width = escape(piece).chars().count();
            if shown + width > max {
                break 'pieces;
            }
            shown += width;
            end += piece.len();
        }
    }
    (escape(&bytes[..end]), true)
}

/// A character a terminal shows as nothing or as a plain space, or that reorders or
/// breaks the line: whitespace other than the space, Unicode's format characters
/// (category Cf), the rest of its default-ignorable code points (combining grapheme
/// joiner, variation selectors, Hangul fillers, the unassigned ones among them) and
/// the Braille blank. Shown, two keys would look alike, and what is shown would not
/// read back as the key.
fn unseen(c: char) -> bool {
    (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// A file's name as `escape` shows a key: in a report of one field a line, a name
/// holding a newline or a terminal escape would print a line of its own that looks
/// like another field, or run the escape.
pub fn escape_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape(path.as_os_str().as_bytes())
}

/// Reads the form `escape` writes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| {
                        format!("bad escape \\x{hex} in {text:?}: two hex digits expected")
                    })?;
                out.push(b);
            }
            other => {
                return Err(format!(
                    "bad escape \\{} in {text:?} (known: \\\\ \\n \\t \\r \\xNN)",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok(out)
}

/// Adds `name: "text"` when the bytes are UTF-8, else `name_base64: "..."`.
pub fn put_json(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.to_string(), Value::String(text.to_string())),
        Err(_) => object.insert(
            format!("{name}_base64"),
            Value::String(BASE64.encode(bytes)),
        ),
    };
}

/// `object` with the file's name added as `put_json` adds a key: `file` when the name
/// is UTF-8, else `file_base64`. A name shown lossily (each bad byte a U+FFFD) would be
/// no file's name, and two files' names could read the same.
pub fn with_file(file: &std::path::Path, mut object: Value) -> Value {
    use std::os::unix::ffi::OsStrExt;
    if let Value::Object(fields) = &mut object {
        put_json(fields, "file", file.as_os_str().as_bytes());
    }
    object
}

/// Takes `name` (text) or `name_base64` out of an object; exactly one must be there.
pub fn take_json(object: &mut Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let encoded_name = format!("{name}_base64");
    match (object.remove(name), object.remove(&encoded_name)) {
        (Some(Value::String(text)), None) => Ok(text.into_bytes()),
        (None, Some(Value::String(encoded))) => BASE64
            .decode(encoded.as_bytes())
            .map_err(|e| format!("\"{encoded_name}\" is not valid base64: {e}")),
        (Some(_), Some(_)) => Err(format!("both \"{name}\" and \"{encoded_name}\" are given")),
        (None, None) => Err(format!("\"{name}\" (or \"{encoded_name}\") is missing")),
        (Some(_), None) => Err(format!("\"{name}\" must be a string")),
        (None, Some(_)) => Err(format!("\"{encoded_name}\" must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_keys_read_back_to_the_same_bytes() {
        let samples: [&[u8]; 5] = [
            b"plain",
            b"a\\b",
            b"line\nnext\t",
            &[0, 0xff, b'x', 0x80],
            "é✓".as_bytes(),
        ];
        for bytes in samples {
            assert_eq!(
                unescape(&escape(bytes)).unwrap(),
                bytes,
                "{}",
                escape(bytes)
            );
        }
        assert_eq!(escape(&[0, 0xff]), "\\x00\\xff");
        assert_eq!(escape(b" a b "), "\\x20a b\\x20");
        assert_eq!(escape(b"  "), "\\x20\\x20");
        assert_eq!(unescape(&escape(b" a  ")).unwrap(), b" a  ");
        assert_eq!(
            escape("a\u{200b} \u{a0}".as_bytes()),
            "a\\xe2\\x80\\x8b \\xc2\\xa0"
        );
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
    }

    #[test]
    fn a_long_key_is_cut_between_characters() {
        assert_eq!(escape_start(b"short", 5), ("short".to_string(), false));
        assert_eq!(escape_start(b"longer", 5), ("longe".to_string(), true));
        assert_eq!(escape_start("ééé".as_bytes(), 2), ("éé".to_string(), true));
        // Not inside an escape: \x00 is 4 characters.
        assert_eq!(escape_start(&[b'a', 0, 0], 4), ("a".to_string(), true));
        assert_eq!(
            escape_start(&[0xff, 0xfe, 0xfd], 8),
            ("\\xff\\xfe".to_string(), true)
        );
        assert_eq!(escape_start(b"a       b", 5), ("a\\x20".to_string(), true));
    }

    #[test]
    fn json_forms_round_trip() {
        let mut object = Map::new();
        put_json(&mut object, "key", b"text");
        put_json(&mut object, "value", &[0xff, 0]);
        assert_eq!(
            Value::Object(object.clone()).to_string(),
            r#"{"key":"text","value_base64":"/wA="}"#
        );
        assert_eq!(take_json(&mut object, "key").unwrap(), b"text");
        assert_eq!(take_json(&mut object, "value").unwrap(), [0xff, 0]);
        assert!(take_json(&mut object, "value").is_err());
    }
}
