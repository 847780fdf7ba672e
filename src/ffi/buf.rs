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
