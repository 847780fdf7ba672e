//! An entry: as a caller hands it to [`crate::Storage::set_many`], and as its row is
//! read back.
//!
//! Reading an entry's row is done without trusting it. One flipped bit in a record
//! header can give any column any type (or NULL, whatever the schema says), so every
//! column is read as a raw SQLite value and its type checked: a row that does not hold
//! what BackLite wrote is damaged, which is a miss that is removed, never a failed call.
//! Lookups, check, export and inspect all tell a damaged row by the functions here.

use crate::expiration::{is_due, Expiration};
use rusqlite::types::ValueRef;

/// One item of [`crate::Storage::set_many`].
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// When it expires (`Expiration::Default`: the storage's default).
    pub expiration: Expiration,
}

/// What an entry's row says about its value.
pub(crate) enum State<'r> {
    Live {
        value: &'r [u8],
        deadline: Option<i64>,
    },
    Expired,
    Damaged,
}

/// An INTEGER column, or `None` for any other type.
pub(crate) fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        _ => None,
    }
}

/// A `size` column that agrees with the length of the value it describes (both read
/// from the row), or `None`: then what the counters hold for the entry is unknown.
pub(crate) fn size(size: ValueRef<'_>, length: ValueRef<'_>) -> Option<i64> {
    int(size).filter(|&n| n >= 0 && int(length) == Some(n))
}

/// Whether the columns no lookup reads hold what BackLite wrote: the key is a blob,
/// `value_id` an integer or NULL, `created` and `hits` integers, and exactly one of the
/// inline value, `value_id` and `file` set (`inline_is_null`: the inline value is
/// NULL; `has_file`: the row names a value file). What a walk of the whole file (check,
/// export, inspect) adds to [`classify`].
pub(crate) fn bookkeeping_sound(
    key: ValueRef<'_>,
    value_id: ValueRef<'_>,
    created: ValueRef<'_>,
    hits: ValueRef<'_>,
    inline_is_null: bool,
    has_file: bool,
) -> bool {
    let places = [!inline_is_null, value_id != ValueRef::Null, has_file];
    matches!(key, ValueRef::Blob(_))
        && matches!(value_id, ValueRef::Null | ValueRef::Integer(_))
        && int(created).is_some()
        && int(hits).is_some()
        && places.iter().filter(|&&set| set).count() == 1
}

/// An `expires_at` column: `Some(None)` for never, `Some(Some(t))` for a deadline,
/// `None` when it is damaged (any other type).
pub(crate) fn deadline(expires_at: ValueRef<'_>) -> Option<Option<i64>> {
    match expires_at {
        ValueRef::Null => Some(None),
        ValueRef::Integer(t) => Some(Some(t)),
        _ => None,
    }
}

/// Classifies an entry from its `crc`, `size`, `expires_at` and value (inline or
/// stored apart). Every column must have the type BackLite wrote, `size` the value's
/// length and `crc` its CRC-32. An expired entry is not read further.
pub(crate) fn classify<'r>(
    crc: ValueRef<'_>,
    size: ValueRef<'_>,
    expires_at: ValueRef<'_>,
    value: ValueRef<'r>,
    now: i64,
) -> State<'r> {
    let Some(deadline) = deadline(expires_at) else {
        return State::Damaged;
    };
    if is_due(deadline, now) {
        return State::Expired;
    }
    let ValueRef::Blob(value) = value else {
        return State::Damaged;
    };
    if int(size) != Some(value.len() as i64) || int(crc) != Some(crc32fast::hash(value) as i64) {
        return State::Damaged;
    }
    State::Live { value, deadline }
}

/// Where a live entry's value is, as its row says.
pub(crate) enum Located<'r> {
    /// In the row itself, its length and CRC checked.
    Inline {
        value: &'r [u8],
        deadline: Option<i64>,
    },
    /// In `blobs` row `id`, or (`id` `None`) in the file the row's `file` column
    /// names: `size` bytes whose CRC-32 must be `crc`, checked as they are read
    /// (blob_read.rs, value_files.rs), so that a large value is not read twice.
    Apart {
        id: Option<i64>,
        size: u64,
        crc: u32,
        deadline: Option<i64>,
    },
    Expired,
    Damaged,
}

/// Like [`classify`], from the row's own columns: `value` (in the row, or a small value
/// stored apart that the look-up read with it), else `value_id`, whose value is read
/// and checked next (blob_read.rs), else the value file the row names (the caller
/// reads its `file` column).
pub(crate) fn locate<'r>(
    crc: ValueRef<'_>,
    size: ValueRef<'_>,
    expires_at: ValueRef<'_>,
    value: ValueRef<'r>,
    value_id: ValueRef<'_>,
    now: i64,
) -> Located<'r> {
    match (value, value_id) {
        // In the row, or a small value stored apart that the look-up read with it.
        (ValueRef::Blob(_), _) => match classify(crc, size, expires_at, value, now) {
            State::Live { value, deadline } => Located::Inline { value, deadline },
            State::Expired => Located::Expired,
            State::Damaged => Located::Damaged,
        },
        (ValueRef::Null, ValueRef::Integer(_) | ValueRef::Null) => {
            let deadline = match expires_at {
                ValueRef::Null => None,
                ValueRef::Integer(t) => Some(t),
                _ => return Located::Damaged,
            };
            if is_due(deadline, now) {
                return Located::Expired;
            }
            let size = int(size).and_then(|n| u64::try_from(n).ok());
            let crc = int(crc).and_then(|c| u32::try_from(c).ok());
            match (size, crc) {
                (Some(size), Some(crc)) => Located::Apart {
                    id: int(value_id),
                    size,
                    crc,
                    deadline,
                },
                _ => Located::Damaged,
            }
        }
        _ => Located::Damaged,
    }
}

/// A value kept in a file, as its row names it: `None` if the row names no file,
/// `Some(None)` if it names one by a name that is not ours or has a damaged `size` or
/// `crc` (a damaged row; the file is neither read nor removed).
pub(crate) fn in_file(
    file: ValueRef<'_>,
    size: ValueRef<'_>,
    crc: ValueRef<'_>,
) -> Option<Option<(crate::value_files::ValueName, u64, u32)>> {
    let ValueRef::Text(name) = file else {
        return None;
    };
    let name = std::str::from_utf8(name)
        .ok()
        .and_then(crate::value_files::ValueName::parse);
    let size = int(size).and_then(|n| u64::try_from(n).ok());
    let crc = int(crc).and_then(|c| u32::try_from(c).ok());
    Some(match (name, size, crc) {
        (Some(name), Some(size), Some(crc)) => Some((name, size, crc)),
        _ => None,
    })
}
