//! `backlite_buf`: bytes allocated by the library and freed by `backlite_buf_free`.

use super::result::*;
use super::Failure;

/// Bytes returned by the library. Release with `backlite_buf_free`, never `free()`.
/// On success `data` is never NULL, even for an empty value.
#[repr(C)]
pub struct backlite_buf {
    pub data: *mut u8,
    pub len: usize,
}

impl backlite_buf {
    /// Copies `bytes` into a new library allocation.
    pub(crate) fn copy(bytes: &[u8]) -> Result<backlite_buf, Failure> {
        // SAFETY: malloc of at least one byte has no preconditions.
        let data = unsafe { libc::malloc(bytes.len().max(1)) }.cast::<u8>();
        if data.is_null() {
            return Err(Failure::new(
                BACKLITE_RESULT_INTERNAL,
                format!("out of memory allocating {} bytes", bytes.len()),
            ));
        }
        // SAFETY: `data` is a fresh allocation of at least `bytes.len()` bytes, so the
        // ranges are both valid and cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
        Ok(backlite_buf {
            data,
            len: bytes.len(),
        })
    }
}

/// A library allocation that the core fills (`Storage::get_into`): freed unless it is
/// handed to the caller as a `backlite_buf`. A large value is read from the file
/// straight into it, with no copy in between.
pub(crate) struct Malloced {
    data: *mut u8,
    len: usize,
}

impl Malloced {
    /// `len` bytes, not initialised.
    pub(crate) fn new(len: usize) -> crate::Result<Malloced> {
        // SAFETY: malloc of at least one byte has no preconditions.
        let data = unsafe { libc::malloc(len.max(1)) }.cast::<u8>();
        if data.is_null() {
            return Err(crate::Error::new(
                crate::ErrorKind::Internal,
                format!("out of memory allocating {len} bytes"),
            ));
        }
        Ok(Malloced { data, len })
    }

    /// The bytes, for the caller. Only once the core has written every one of them:
    /// `get_into` returns a buffer only then.
    pub(crate) fn into_buf(self) -> backlite_buf {
        let buf = backlite_buf {
            data: self.data,
            len: self.len,
        };
        std::mem::forget(self);
        buf
    }
}

impl AsMut<[std::mem::MaybeUninit<u8>]> for Malloced {
    fn as_mut(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: `data` is a live allocation of at least `len` bytes owned by `self`,
        // borrowed mutably for the slice's life; MaybeUninit needs no initialisation.
        unsafe { std::slice::from_raw_parts_mut(self.data.cast(), self.len) }
    }
}

impl Drop for Malloced {
    fn drop(&mut self) {
        // SAFETY: `data` came from `libc::malloc` and is freed once, here (`into_buf`
        // forgets `self` instead).
        unsafe { libc::free(self.data.cast()) };
    }
}

/// Frees the bytes of `buf`, then sets it to `{NULL, 0}`. NULL is accepted.
#[no_mangle]
pub unsafe extern "C" fn backlite_buf_free(buf: *mut backlite_buf) {
    // SAFETY: `buf` is NULL or points to a `backlite_buf` (the header's contract).
    if let Some(buf) = unsafe { buf.as_mut() } {
        // SAFETY: `data` is NULL or came from `libc::malloc` in `backlite_buf::copy`,
        // and is freed once: it is set to NULL right after.
        unsafe { libc::free(buf.data.cast()) };
        buf.data = std::ptr::null_mut();
        buf.len = 0;
    }
}
