//! `backlite_value_reader`: a value read when the caller is ready, into the caller's
//! buffer (the core's `ValueReader`).

use super::error::backlite_error;
use super::result::*;
use super::storage::{backlite_storage, ms_left};
use super::{boundary, try_mut, try_out_slice, try_ref, try_slice};
use crate::{Part, ValueReader};
use std::mem::MaybeUninit;

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
/// not NULL) its time left now, or `BACKLITE_EXPIRATION_NEVER`. NOT_FOUND: no live
/// entry; a miss is an answer, as for a get: `*err`, `*reader_out`, `*size_out` and
/// `*expires_in_ms_out` are all left untouched (set `*reader_out` to NULL before the
/// call if you test it after). Free the reader with `backlite_value_reader_free`.
///
/// What the reader holds: a value kept in a file of its own, the open file (a set or
/// delete of the key meanwhile leaves it whole: the reader reads the value as it was);
/// a value of at most 256 KiB, or any value of an in-memory cache, a copy (one: the
/// value's length in library memory); a larger value kept in the database file, a
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
        // A miss is an answer: nothing is written, `*reader_out` included.
        let Some(reader) = s.inner.open_reader(key)? else {
            return Ok(BACKLITE_RESULT_NOT_FOUND);
        };
        let (size, left) = (reader.len(), ms_left(reader.expires_in()));
        *out = Box::into_raw(Box::new(backlite_value_reader { inner: reader }));
        // SAFETY: `size_out` is NULL or writable (the header's contract).
        if let Some(size_out) = unsafe { size_out.as_mut() } {
            *size_out = size;
        }
        // SAFETY: `expires_in_ms_out` is NULL or writable (the header's contract).
        if let Some(left_out) = unsafe { expires_in_ms_out.as_mut() } {
            *left_out = left;
        }
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Copies the next bytes of the value into `buf` (at most `cap`; `buf` may be NULL
/// when `cap` is 0); `*read_out` gets how many. 0 only at the end of the value (or when
/// `cap` is 0); fewer than `cap` bytes before the end is no failure (the last 64 KiB
/// or less of a value come in a read of their own). The read that reaches the end
/// checks the value's CRC-32: OK with the last bytes when it matches, else NOT_FOUND
/// with those bytes withheld, so the whole of a damaged value is never handed over:
/// drop what was read (the entry is removed, as a get removes a damaged one, and the
/// hit its open counted becomes a miss in the stats, as a get of it counts one). Every
/// read after that is NOT_FOUND too. A value whose file was cut short behind
/// BackLite's back is damaged where the file ends. IO: the file could not be read;
/// INVALID_ARGUMENT: `cap` is larger than PTRDIFF_MAX. On every result but OK, `buf`
/// and `*read_out` are left untouched, and on NOT_FOUND (a miss, as for a get) `*err`
/// too.
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
        match read_part(&mut r.inner, buf)? {
            Part::Bytes(n) => {
                *read_out = n;
                Ok(BACKLITE_RESULT_OK)
            }
            Part::Damaged => Ok(BACKLITE_RESULT_NOT_FOUND),
        }
    })
}

/// The most bytes a read that reaches the end of the value holds in the library's
/// memory before they are handed over.
const TAIL: usize = 64 * 1024;

/// One read of `reader` into `buf` that writes `buf` only when it returns bytes: the
/// read that reaches the end (where the CRC is checked) reads into memory of its own,
/// at most `TAIL` bytes, and copies them to `buf` only if the value proved whole. A
/// read that would reach the end with more than `TAIL` bytes stops `TAIL` bytes short
/// of it, so the end comes with the next read.
fn read_part(reader: &mut ValueReader, buf: &mut [MaybeUninit<u8>]) -> crate::Result<Part> {
    let remaining = reader.remaining();
    if remaining == 0 || (buf.len() as u64) < remaining {
        // Not the end: nothing is checked, the bytes are the caller's at once.
        return reader.read_part_uninit(buf);
    }
    if remaining > TAIL as u64 {
        let short = usize::try_from(remaining - TAIL as u64).unwrap_or(buf.len());
        return reader.read_part_uninit(&mut buf[..short]);
    }
    let mut tail = vec![MaybeUninit::uninit(); remaining as usize];
    let part = reader.read_part_uninit(&mut tail)?;
    if let Part::Bytes(n) = part {
        buf[..n].copy_from_slice(&tail[..n]);
    }
    Ok(part)
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
