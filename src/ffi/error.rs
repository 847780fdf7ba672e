//! `backlite_error`: a per-call error object owned by the caller.

use super::result::backlite_result;
use super::Failure;
use std::ffi::CString;

/// An error: a result code and a message. Owned by the caller; free it with
/// `backlite_error_free`.
pub struct backlite_error {
    code: backlite_result,
    message: CString,
    /// For LEASE_HELD: the holder's time left and when to ask again, in ms.
    lease_held: Option<(i64, i64)>,
}

/// Hands a new error object to the caller through `err`, if `err` is not NULL.
pub(crate) fn report(err: *mut *mut backlite_error, failure: &Failure) {
    if err.is_null() {
        return;
    }
    let message = CString::new(failure.message.replace('\0', "\\0"))
        .unwrap_or_else(|_| CString::from(c"error message unavailable"));
    let boxed = Box::new(backlite_error {
        code: failure.code,
        message,
        lease_held: failure.lease_held,
    });
    // SAFETY: `err` is not NULL (checked above), and the caller passed a writable
    // `backlite_error **` (the header's contract).
    unsafe { *err = Box::into_raw(boxed) };
}

/// The result code of an error; `BACKLITE_RESULT_NULL_PARAMETER` if `e` is NULL.
#[no_mangle]
pub unsafe extern "C" fn backlite_error_result(e: *const backlite_error) -> backlite_result {
    super::infallible(super::result::BACKLITE_RESULT_PANIC, || {
        // SAFETY: `e` is NULL or a live error object (the header's contract).
        match unsafe { e.as_ref() } {
            Some(e) => e.code,
            None => super::result::BACKLITE_RESULT_NULL_PARAMETER,
        }
    })
}

/// The error's message, NUL-terminated UTF-8, valid until `backlite_error_free`.
/// A NULL `e` gives an empty string.
#[no_mangle]
pub unsafe extern "C" fn backlite_error_message(e: *const backlite_error) -> *const libc::c_char {
    // SAFETY: `e` is NULL or a live error object (the header's contract).
    super::infallible(c"".as_ptr(), || match unsafe { e.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    })
}

/// For a `BACKLITE_RESULT_LEASE_HELD` error: how many milliseconds the holder's lease
/// has left unless the holder renews it (it does while its compute runs, so this is a
/// bound on how long a holder that stopped can block the key, not a promise of when the
/// value will be there). -1 for any other error, and for NULL.
#[no_mangle]
pub unsafe extern "C" fn backlite_error_lease_time_left_ms(e: *const backlite_error) -> i64 {
    // SAFETY: `e` is NULL or a live error object (the header's contract).
    let held = || unsafe { e.as_ref() }.and_then(|e| e.lease_held);
    super::infallible(-1, || match held() {
        Some((left, _)) => left,
        None => -1,
    })
}

/// For a `BACKLITE_RESULT_LEASE_HELD` error: how many milliseconds to wait before asking
/// again (the library's back-off: 1 ms doubling to 50 ms with each step of a
/// `backlite_lease_step` wait, never past the holder's deadline). -1 for any other
/// error, and for NULL.
#[no_mangle]
pub unsafe extern "C" fn backlite_error_retry_in_ms(e: *const backlite_error) -> i64 {
    // SAFETY: `e` is NULL or a live error object (the header's contract).
    let held = || unsafe { e.as_ref() }.and_then(|e| e.lease_held);
    super::infallible(-1, || match held() {
        Some((_, retry)) => retry,
        None => -1,
    })
}

/// Frees an error object. NULL is accepted and does nothing.
#[no_mangle]
pub unsafe extern "C" fn backlite_error_free(e: *mut backlite_error) {
    if !e.is_null() {
        // SAFETY: `e` came from `Box::into_raw` in `report` and is freed once (the
        // header's contract).
        super::infallible((), || drop(unsafe { Box::from_raw(e) }));
    }
}
