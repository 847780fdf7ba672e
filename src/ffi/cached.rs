//! `backlite_cached_call`: memoisation through a C compute callback, with an optional
//! C barrier.

use super::buf::backlite_buf;
use super::error::backlite_error;
use super::result::*;
use super::storage::backlite_storage;
use super::{boundary, try_mut, try_ref, try_slice, Failure};
use crate::{Barrier, Error, ErrorKind, Expiration};

/// Where a compute callback writes its value; valid only during that callback.
pub struct backlite_sink {
    bytes: Vec<u8>,
}

/// Computes a missing value by writing it to `sink`; returns 0 on success.
pub type backlite_compute_fn =
    Option<unsafe extern "C" fn(user_data: *mut libc::c_void, sink: *mut backlite_sink) -> i32>;

/// A lock taken around the compute of a missing value.
#[repr(C)]
pub struct backlite_barrier {
    pub user_data: *mut libc::c_void,
    /// 0 = acquired; any other value fails the call.
    pub lock: Option<unsafe extern "C" fn(user_data: *mut libc::c_void) -> i32>,
    /// Called exactly once after every successful lock.
    pub unlock: Option<unsafe extern "C" fn(user_data: *mut libc::c_void)>,
}

struct CBarrier {
    user_data: *mut libc::c_void,
    lock: unsafe extern "C" fn(*mut libc::c_void) -> i32,
    unlock: unsafe extern "C" fn(*mut libc::c_void),
}

impl Barrier for CBarrier {
    fn lock(&self) -> crate::Result<()> {
        // SAFETY: the caller vouches for the callback and its user_data (the barrier's
        // contract in the header).
        match unsafe { (self.lock)(self.user_data) } {
            0 => Ok(()),
            rc => Err(Error::new(
                ErrorKind::CallbackFailed,
                format!("the barrier's lock callback returned {rc}"),
            )),
        }
    }

    fn unlock(&self) {
        // SAFETY: as for `lock`; the core calls `unlock` once after each successful lock.
        unsafe { (self.unlock)(self.user_data) }
    }
}

/// Runs a C compute callback into a fresh sink.
///
/// # Safety
///
/// `compute` must be safe to call with `user_data` and a sink valid for the call (the
/// compute callback's contract in the header).
pub(crate) unsafe fn run_compute(
    compute: unsafe extern "C" fn(*mut libc::c_void, *mut backlite_sink) -> i32,
    user_data: *mut libc::c_void,
) -> crate::Result<Vec<u8>> {
    let mut sink = backlite_sink { bytes: Vec::new() };
    // SAFETY: the caller's contract above; `sink` lives until the callback returns.
    match unsafe { compute(user_data, &mut sink) } {
        0 => Ok(sink.bytes),
        rc => Err(Error::new(
            ErrorKind::CallbackFailed,
            format!("the compute callback returned {rc}; nothing was stored"),
        )),
    }
}

/// Appends `len` bytes to the value being computed.
#[no_mangle]
pub unsafe extern "C" fn backlite_sink_write(
    sink: *mut backlite_sink,
    data: *const u8,
    len: usize,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `sink` is NULL or writable (the header's contract).
        let sink = unsafe { try_mut(sink, "sink") }?;
        // SAFETY: `data` is valid for `len` bytes (the header's contract).
        let data = unsafe { try_slice(data, len, "data") }?;
        sink.bytes.try_reserve(data.len()).map_err(|_| {
            Failure::new(
                BACKLITE_RESULT_INTERNAL,
                format!("out of memory appending {len} bytes"),
            )
        })?;
        sink.bytes.extend_from_slice(data);
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Returns the value under `key`, computing it on a miss. On a miss: if `barrier` is
/// given, calls `lock`, then looks up again (another caller may have filled the key
/// while we waited); if still missing, calls `compute`, stores what it wrote to the sink
/// with `expiration_ms`, calls `unlock`, and returns the value. A failing `compute` (or
/// `lock`) gives CALLBACK_FAILED with nothing stored; `unlock` is called once after every
/// successful `lock`. A computed value too large to store is still returned (OK). A
/// store that fails otherwise (BUSY after the busy timeout, IO on a full disk) fails the
/// call with its code, and the value is not returned: the cache is not working, and a
/// caller that did not hear it would compute every call again.
#[no_mangle]
pub unsafe extern "C" fn backlite_cached_call(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    compute: backlite_compute_fn,
    user_data: *mut libc::c_void,
    barrier: *const backlite_barrier,
    expiration_ms: i64,
    value_out: *mut backlite_buf,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        let compute = compute.ok_or_else(|| Failure::null("compute"))?;
        // SAFETY: `value_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(value_out, "value_out") }?;
        let expiration = Expiration::from_ms(expiration_ms)?;
        // SAFETY: `barrier` is NULL or points to a `backlite_barrier` (the header's
        // contract).
        let barrier = match unsafe { barrier.as_ref() } {
            None => None,
            Some(b) => Some(CBarrier {
                user_data: b.user_data,
                lock: b.lock.ok_or_else(|| Failure::null("barrier->lock"))?,
                unlock: b.unlock.ok_or_else(|| Failure::null("barrier->unlock"))?,
            }),
        };
        let value = s.inner.cached_call_with(
            key,
            expiration,
            barrier.as_ref().map(|b| b as &dyn Barrier),
            // SAFETY: `compute` and `user_data` are the caller's (the callback contract).
            || unsafe { run_compute(compute, user_data) },
            backlite_buf::copy,
        )??;
        *out = value;
        Ok(BACKLITE_RESULT_OK)
    })
}
