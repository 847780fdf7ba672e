//! Result codes: their values (fixed by the C contract) and their texts.

use crate::ErrorKind;

/// The result of every fallible call: `BACKLITE_RESULT_OK` (0) or a failure code.
pub type backlite_result = i32;

/// Success.
pub const BACKLITE_RESULT_OK: backlite_result = 0;
/// No live entry: absent, expired, or damaged.
pub const BACKLITE_RESULT_NOT_FOUND: backlite_result = 1;
/// A required pointer was NULL (or a NULL data pointer came with a non-zero length).
pub const BACKLITE_RESULT_NULL_PARAMETER: backlite_result = 2;
/// A bad enum value, bad path or bad duration.
pub const BACKLITE_RESULT_INVALID_ARGUMENT: backlite_result = 3;
/// The file cannot be opened, created, read or written.
pub const BACKLITE_RESULT_IO: backlite_result = 4;
/// The file exists but is not a BackLite cache; it is left untouched.
pub const BACKLITE_RESULT_NOT_A_CACHE: backlite_result = 5;
/// SQLite reports the database file damaged.
pub const BACKLITE_RESULT_CORRUPT: backlite_result = 6;
/// A lock was not obtained within the busy timeout.
pub const BACKLITE_RESULT_BUSY: backlite_result = 7;
/// The value is larger than max_size (or `BACKLITE_MAX_VALUE_SIZE`): not stored.
pub const BACKLITE_RESULT_TOO_LARGE: backlite_result = 8;
/// A compute, lock or visitor callback reported failure.
pub const BACKLITE_RESULT_CALLBACK_FAILED: backlite_result = 9;
/// The file was written by a newer BackLite schema.
pub const BACKLITE_RESULT_INCOMPATIBLE: backlite_result = 10;
/// An internal bug, caught at the boundary.
pub const BACKLITE_RESULT_PANIC: backlite_result = 11;
/// Any other SQLite or system error.
pub const BACKLITE_RESULT_INTERNAL: backlite_result = 12;
/// A lease expired and another owner took it over: nothing was stored, so the new
/// owner's value is not overwritten.
pub const BACKLITE_RESULT_LEASE_LOST: backlite_result = 13;
/// Another live owner holds the key's lease (it is computing the value). Its time left
/// is a number: `backlite_error_lease_time_left_ms`; when to ask again:
/// `backlite_error_retry_in_ms`.
pub const BACKLITE_RESULT_LEASE_HELD: backlite_result = 14;

pub(crate) fn code_of(kind: ErrorKind) -> backlite_result {
    match kind {
        ErrorKind::InvalidArgument => BACKLITE_RESULT_INVALID_ARGUMENT,
        ErrorKind::Io => BACKLITE_RESULT_IO,
        ErrorKind::NotACache => BACKLITE_RESULT_NOT_A_CACHE,
        ErrorKind::Corrupt => BACKLITE_RESULT_CORRUPT,
        ErrorKind::Busy => BACKLITE_RESULT_BUSY,
        ErrorKind::TooLarge => BACKLITE_RESULT_TOO_LARGE,
        ErrorKind::CallbackFailed => BACKLITE_RESULT_CALLBACK_FAILED,
        ErrorKind::Incompatible => BACKLITE_RESULT_INCOMPATIBLE,
        ErrorKind::Internal => BACKLITE_RESULT_INTERNAL,
        ErrorKind::LeaseLost => BACKLITE_RESULT_LEASE_LOST,
        ErrorKind::LeaseHeld => BACKLITE_RESULT_LEASE_HELD,
    }
}

/// A static, NUL-terminated description of a result code. Unknown codes get a text too.
#[no_mangle]
pub extern "C" fn backlite_result_str(r: backlite_result) -> *const libc::c_char {
    let text: &'static str = match r {
        BACKLITE_RESULT_OK => "ok\0",
        BACKLITE_RESULT_NOT_FOUND => "not found: no live entry (absent, expired, or damaged)\0",
        BACKLITE_RESULT_NULL_PARAMETER => "a required pointer was NULL\0",
        BACKLITE_RESULT_INVALID_ARGUMENT => "invalid argument\0",
        BACKLITE_RESULT_IO => "cannot open, create, read or write the file\0",
        BACKLITE_RESULT_NOT_A_CACHE => "the file is not a BackLite cache; it was left untouched\0",
        BACKLITE_RESULT_CORRUPT => "the database file is damaged\0",
        BACKLITE_RESULT_BUSY => "lock not obtained within the busy timeout\0",
        BACKLITE_RESULT_TOO_LARGE => {
            "value larger than max_size or BACKLITE_MAX_VALUE_SIZE: not stored\0"
        }
        BACKLITE_RESULT_CALLBACK_FAILED => "a callback reported failure\0",
        BACKLITE_RESULT_INCOMPATIBLE => "written by a newer BackLite schema\0",
        BACKLITE_RESULT_PANIC => "internal error in BackLite (a bug)\0",
        BACKLITE_RESULT_INTERNAL => "internal SQLite or system error\0",
        BACKLITE_RESULT_LEASE_LOST => "the lease was lost to another owner: nothing stored\0",
        BACKLITE_RESULT_LEASE_HELD => {
            "another live owner holds the key's lease (it is computing the value)\0"
        }
        _ => "unknown result code\0",
    };
    text.as_ptr().cast()
}
