//! The C ABI: thin wrappers that check pointers, convert C values to core values,
//! catch panics, and convert results back. No cache logic lives here.
//!
//! Every fallible export has the shape `boundary(err, || { ... })`: the closure returns
//! a result code or a `Failure`, and `boundary` turns a failure (or a panic) into the
//! code plus an error object in `*err`.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety rules are the C contract in the header.

pub mod buf;
pub mod cached;
pub mod check;
pub mod error;
mod fork;
pub mod lease;
pub mod lifetime;
pub mod options;
mod panic;
pub mod remote;
pub mod result;
pub mod storage;
pub mod value_reader;
pub mod version;

use self::error::backlite_error;
use self::result::*;

/// Why a call failed: a result code and a message for the error object.
pub(crate) struct Failure {
    pub code: backlite_result,
    pub message: String,
    /// For LEASE_HELD: the holder's time left and when to ask again, in ms.
    pub lease_held: Option<(i64, i64)>,
}

impl Failure {
    pub fn new(code: backlite_result, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            lease_held: None,
        }
    }

    pub fn null(what: &str) -> Self {
        Failure::new(
            BACKLITE_RESULT_NULL_PARAMETER,
            format!("{what} must not be NULL"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(BACKLITE_RESULT_INVALID_ARGUMENT, message)
    }
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Failure {
            lease_held: e
                .lease_time_left()
                .zip(e.retry_in())
                .map(|(l, r)| (ms(l), ms(r))),
            ..Failure::new(result::code_of(e.kind()), e.message())
        }
    }
}

pub(crate) type FfiResult = Result<backlite_result, Failure>;

/// Runs an export's body: catches panics (silently: see `panic`) and reports failures
/// through `err`.
pub(crate) fn boundary(
    err: *mut *mut backlite_error,
    body: impl FnOnce() -> FfiResult,
) -> backlite_result {
    let failure = match panic::catch(body) {
        Ok(Ok(code)) => return code,
        Ok(Err(f)) => f,
        Err(what) => Failure::new(
            BACKLITE_RESULT_PANIC,
            format!("internal error (a bug in BackLite, please report it): {what}"),
        ),
    };
    error::report(err, &failure);
    failure.code
}

/// Runs a body that cannot report errors; a panic gives `fallback`.
pub(crate) fn infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    panic::catch(body).unwrap_or(fallback)
}

/// Borrows `*ptr`, or fails with NULL_PARAMETER naming the argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a valid `T` that nothing mutates for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller's contract above; `as_ref` handles NULL.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Borrows `*ptr` mutably, or fails with NULL_PARAMETER naming the argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a valid `T` that nothing else reads or writes for `'a`.
pub(crate) unsafe fn try_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller's contract above; `as_mut` handles NULL.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// Borrows `len` bytes at `ptr`; NULL is accepted only when `len` is 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for reads of `len` bytes that nothing mutates for `'a`.
pub(crate) unsafe fn try_slice<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(null_with_length(what, len))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: `ptr` is not NULL and `len` fits an isize (both checked above), and it is
    // valid for `len` bytes (the caller's contract above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Borrows `len` bytes at `ptr` to be written, which need not be initialised (a C
/// caller's `malloc`); NULL is accepted only when `len` is 0.
///
/// # Safety
///
/// `ptr` is NULL or valid for writes of `len` bytes that nothing else uses for `'a`.
pub(crate) unsafe fn try_out_slice<'a>(
    ptr: *mut u8,
    len: usize,
    what: &str,
) -> Result<&'a mut [std::mem::MaybeUninit<u8>], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(null_with_length(what, len))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what} length {len} is too large"
        )));
    }
    // SAFETY: `ptr` is not NULL and `len` fits an isize (both checked above), and it is
    // valid for writes of `len` bytes (the caller's contract above); `MaybeUninit`
    // makes no claim on what the bytes hold.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<std::mem::MaybeUninit<u8>>(), len) })
}

fn null_with_length(what: &str, len: usize) -> Failure {
    Failure::new(
        BACKLITE_RESULT_NULL_PARAMETER,
        format!("{what} is NULL but its length is {len}"),
    )
}

/// Reads a NUL-terminated UTF-8 string.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that nothing mutates for `'a`.
pub(crate) unsafe fn try_str<'a>(ptr: *const libc::c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: `ptr` is not NULL (checked above) and NUL-terminated (the caller's contract).
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}
