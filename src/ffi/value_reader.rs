//! `backlite_value_reader`: a value read when the caller is ready, into the caller's
//! buffer (the core's `ValueReader`).

use super::error::backlite_error;
use super::result::*;
use super::storage::{backlite_storage, ms_left};
use super::{boundary, try_mut, try_out_slice, try_ref, try_slice};
use crate::{Part, ValueReader};

/// A reader of one value, from `backlite_storage_open_reader`; free it with
/// `backlite_value_reader_free`. One thread at a time (calls on one reader must not
/// overlap); it may be handed to another thread. It keeps what it needs of its storage:
/// it stays valid after `backlite_storage_free`, which may come first.
pub struct backlite_value_reader {
    inner: ValueReader,
}

/// Opens a reader of the value under `key`, to read it a buffer at a time with
/// `backlite_value_reader_read`, in bounded library memory. OK: a hit (counted, and
/// recorded as an access, now) as for `backlite_storage_get`; `*reader_out` gets the
/// reader, `*size_out` (if not NULL) the value's length and `*expires_in_ms_out` (if
/// not NULL) its time left now, or `BACKLITE_EXPIRATION_NEVER`. NOT_FOUND (`*err`
/// untouched, `*reader_out` NULL): no live entry. Free the reader with
/// `backlite_value_reader_free`.
///
/// What the reader holds: a value kept in a file of its own, the open file (a set or
/// delete of the key meanwhile leaves it whole: the reader reads the value as it was);
/// a value of at most 256 KiB, a copy; a larger value kept in the database file, a
/// connection in a read transaction, so that it reads the value as it was: writes go
/// on, but the WAL is not checkpointed past it until the reader is freed. Do not keep
/// such a reader open for long.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_open_reader(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    reader_out: *mut *mut backlite_value_reader,
    size_out: *mut u64,
    expires_in_ms_out: *mut i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        // SAFETY: `reader_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(reader_out, "reader_out") }?;
        let Some(reader) = s.inner.open_reader(key)? else {
            *out = std::ptr::null_mut();
            return Ok(BACKLITE_RESULT_NOT_FOUND);
        };
        // SAFETY: `size_out` is NULL or writable (the header's contract).
        if let Some(size) = unsafe { size_out.as_mut() } {
            *size = reader.len();
        }
        // SAFETY: `expires_in_ms_out` is NULL or writable (the header's contract).
        if let Some(left) = unsafe { expires_in_ms_out.as_mut() } {
            *left = ms_left(reader.expires_in());
        }
        *out = Box::into_raw(Box::new(backlite_value_reader { inner: reader }));
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Copies the next bytes of the value into `buf` (at most `cap`; `buf` may be NULL
/// when `cap` is 0); `*read_out` gets how many. 0 only at the end of the value (or when
/// `cap` is 0). The read that reaches the end checks the value's CRC-32: OK with the
/// last bytes when it matches, else NOT_FOUND (`*err` untouched) with those bytes
/// withheld, so the whole of a damaged value is never handed over: drop what was read
/// (the entry is removed, as a get removes a damaged one). Every read after that is
/// NOT_FOUND too. A value whose file was cut short behind BackLite's back is damaged
/// where the file ends. IO: the file could not be read; INVALID_ARGUMENT: `cap` is
/// larger than PTRDIFF_MAX.
#[no_mangle]
pub unsafe extern "C" fn backlite_value_reader_read(
    r: *mut backlite_value_reader,
    buf: *mut u8,
    cap: usize,
    read_out: *mut usize,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `r` is NULL or a live reader used by this thread alone (the header's
        // contract).
        let r = unsafe { try_mut(r, "reader") }?;
        // SAFETY: `read_out` is NULL or writable (the header's contract).
        let read_out = unsafe { try_mut(read_out, "read_out") }?;
        // SAFETY: `buf` is NULL or writable for `cap` bytes (the header's contract).
        let buf = unsafe { try_out_slice(buf, cap, "buf") }?;
        match r.inner.read_part_uninit(buf)? {
            Part::Bytes(n) => {
                *read_out = n;
                Ok(BACKLITE_RESULT_OK)
            }
            Part::Damaged => Ok(BACKLITE_RESULT_NOT_FOUND),
        }
    })
}

/// The value's length in bytes; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn backlite_value_reader_size(r: *const backlite_value_reader) -> u64 {
    // SAFETY: `r` is NULL or a live reader (the header's contract).
    super::infallible(0, || unsafe { r.as_ref() }.map_or(0, |r| r.inner.len()))
}

/// Frees the reader (and gives back what it held: a file, or a connection and its
/// read transaction). NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn backlite_value_reader_free(r: *mut backlite_value_reader) {
    if !r.is_null() {
        // SAFETY: `r` came from `Box::into_raw` in `backlite_storage_open_reader`, and
        // the caller frees it once, with no other call on it running (the header's
        // contract).
        super::infallible((), || drop(unsafe { Box::from_raw(r) }));
    }
}
