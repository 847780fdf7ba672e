//! The remote value format: a 25-byte header, then (for a hashed key) the full key,
//! then the value. Anything else found under a key (a foreign value, a truncated or
//! damaged one, another format version) is a miss, never a wrong value.
//!
//! ```text
//! 0..3   "BLR"          magic
//! 3      1              format version
//! 4      flags          bit 0: the full key follows the header (the Redis key is a hash)
//! 5..13  reserved       zero
//! 13..21 expires_at     i64 LE, epoch ms; -1: never
//! 21..25 crc32          u32 LE, CRC-32 of bytes 0..21 and everything after 25
//! 25..   [key_len u32 LE, key] value
//! ```

const MAGIC: &[u8; 3] = b"BLR";
const VERSION: u8 = 1;
const FLAG_KEY: u8 = 1;
pub(crate) const HEADER: usize = 25;

/// Encodes `value`; `full_key` is stored when the Redis key is a hash of it.
pub(crate) fn encode(expires_at: Option<i64>, full_key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let extra = full_key.map_or(0, |k| 4 + k.len());
    let mut out = Vec::with_capacity(HEADER + extra + value.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(if full_key.is_some() { FLAG_KEY } else { 0 });
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&expires_at.unwrap_or(-1).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    if let Some(k) = full_key {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
    }
    out.extend_from_slice(value);
    let crc = crc_of(&out);
    out[21..25].copy_from_slice(&crc.to_le_bytes());
    out
}

fn crc_of(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..21]);
    h.update(&bytes[HEADER..]);
    h.finalize()
}

/// A checked remote value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded<'a> {
    /// Epoch ms, or `None`: never expires.
    pub expires_at: Option<i64>,
    pub value: &'a [u8],
    /// The CRC-32 of `value` alone, as the local file keeps it: taken on the way to the
    /// whole payload's, so the value is read once.
    pub crc: u32,
}

/// Checks and decodes `bytes` found under `key`'s Redis key; `None` for anything that
/// is not a value of this format for exactly this key.
pub(crate) fn decode<'a>(bytes: &'a [u8], key: &[u8], hashed: bool) -> Option<Decoded<'a>> {
    if bytes.len() < HEADER || &bytes[..3] != MAGIC || bytes[3] != VERSION {
        return None;
    }
    let flags = bytes[4];
    if flags & !FLAG_KEY != 0 || bytes[5..13] != [0; 8] {
        return None;
    }
    let expires_at = i64::from_le_bytes(bytes[13..21].try_into().ok()?);
    let expires_at = match expires_at {
        -1 => None,
        t if t >= 0 => Some(t),
        _ => return None,
    };
    if (flags & FLAG_KEY != 0) != hashed {
        return None;
    }
    // The CRC of bytes 0..21, then of the stored key, then of the value.
    let mut whole = crc32fast::Hasher::new();
    whole.update(&bytes[..21]);
    let mut rest = &bytes[HEADER..];
    if hashed {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let stored = rest.get(4..4 + len)?;
        if stored != key {
            return None; // a hash collision: another key's value
        }
        whole.update(&rest[..4 + len]);
        rest = &rest[4 + len..];
    }
    let crc = crc32fast::hash(rest);
    whole.combine(&crc32fast::Hasher::new_with_initial_len(
        crc,
        rest.len() as u64,
    ));
    if whole.finalize() != u32::from_le_bytes(bytes[21..25].try_into().ok()?) {
        return None;
    }
    Some(Decoded {
        expires_at,
        value: rest,
        crc,
    })
}

/// The bytes of a value's start that `live_header` reads: its header and, for a hashed
/// key, the full key stored after it.
pub(crate) fn header_len(key: &[u8], hashed: bool) -> usize {
    HEADER + if hashed { 4 + key.len() } else { 0 }
}

/// Whether `start`, the first `header_len` bytes found under `key`'s Redis key, begins
/// a value a look-up at `now` (epoch ms) could return: this format, for exactly this
/// key, not expired. Its checksum is not read (that needs the whole value), as a local
/// delete does not read the value it removes.
pub(crate) fn live_header(start: &[u8], key: &[u8], hashed: bool, now: i64) -> bool {
    if start.len() < HEADER || &start[..3] != MAGIC || start[3] != VERSION {
        return false;
    }
    let flags = start[4];
    if flags & !FLAG_KEY != 0 || start[5..13] != [0; 8] || (flags & FLAG_KEY != 0) != hashed {
        return false;
    }
    let live = match i64::from_le_bytes(start[13..21].try_into().unwrap_or([0; 8])) {
        -1 => true,
        t => t > now,
    };
    if !live || !hashed {
        return live;
    }
    let rest = &start[HEADER..];
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
    rest.get(4..4 + len) == Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_a_miss() {
        let v = encode(Some(1234), None, b"hello");
        let d = decode(&v, b"k", false).unwrap();
        assert_eq!(d.expires_at, Some(1234));
        assert_eq!(d.value, b"hello");
        assert_eq!(d.crc, crc32fast::hash(b"hello"));
        for i in 0..v.len() {
            let mut bad = v.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, b"k", false).is_none(), "byte {i} flipped");
        }
        assert!(decode(&v[..v.len() - 1], b"k", false).is_none());
        assert!(decode(b"hello", b"k", false).is_none());
        assert!(decode(b"", b"k", false).is_none());
        let long = encode(None, Some(b"the full key"), b"");
        assert_eq!(decode(&long, b"the full key", true).unwrap().value, b"");
        let long = encode(Some(7), Some(b"the full key"), b"the value");
        let d = decode(&long, b"the full key", true).unwrap();
        assert_eq!(
            (d.value, d.crc),
            (&b"the value"[..], crc32fast::hash(b"the value"))
        );
        for i in 0..long.len() {
            let mut bad = long.clone();
            bad[i] ^= 0x10;
            assert!(
                decode(&bad, b"the full key", true).is_none(),
                "byte {i} flipped"
            );
        }
        assert!(decode(&long, b"another key", true).is_none());
        assert!(decode(&long, b"the full key", false).is_none());
    }

    #[test]
    fn a_live_header_is_of_this_format_this_key_and_not_expired() {
        let v = encode(Some(1234), None, b"hello");
        let start = &v[..header_len(b"k", false)];
        assert!(live_header(start, b"k", false, 1233));
        assert!(!live_header(start, b"k", false, 1234));
        assert!(!live_header(start, b"k", true, 1233));
        assert!(!live_header(b"plain text", b"k", false, 0));
        assert!(live_header(
            &encode(None, None, b"")[..HEADER],
            b"k",
            false,
            i64::MAX
        ));
        let long = encode(None, Some(b"the full key"), b"v");
        let start = &long[..header_len(b"the full key", true)];
        assert!(live_header(start, b"the full key", true, 0));
        assert!(!live_header(start, b"the full kez", true, 0));
        assert!(!live_header(
            &start[..start.len() - 1],
            b"the full key",
            true,
            0
        ));
        assert!(!live_header(start, b"the full key", false, 0));
    }
}
