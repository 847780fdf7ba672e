//! `backlite_lease` and `backlite_cached_call_exclusive`: stampede protection for any
//! runtime (two-phase, non-blocking) and for blocking callers (single flight).

use super::buf::backlite_buf;
use super::cached::{backlite_compute_fn, run_compute};
use super::error::backlite_error;
use super::result::*;
use super::storage::{backlite_storage, ms_left};
use super::{boundary, try_mut, try_ref, try_slice, Failure};
use crate::{Expiration, Lease, LeaseOutcome};
use std::time::Duration;

/// The right to compute one key, from `backlite_lease_try_acquire`. Release it with
/// exactly one of `backlite_lease_fulfill` or `backlite_lease_abandon`. It stays valid
/// whatever happens to the storage handle meanwhile (even `backlite_storage_free`).
pub struct backlite_lease {
    inner: Lease,
}

fn duration(ms: i64, what: &str) -> Result<Duration, Failure> {
    if ms <= 0 {
        return Err(Failure::invalid(format!("{what} must be > 0 ms, got {ms}")));
    }
    Ok(Duration::from_millis(ms as u64))
}

/// Looks `key` up without ever waiting for another owner:
/// - `BACKLITE_RESULT_OK`: a hit; `*value_out` gets the value.
/// - `BACKLITE_RESULT_NOT_FOUND`: a miss, and `*lease_out` gets a lease held for
///   `lease_ms` (> 0): compute the value, then `backlite_lease_fulfill` (or
///   `backlite_lease_abandon`). `*err` is left untouched: this is not a failure.
/// - `BACKLITE_RESULT_BUSY`: another live owner is computing it; nothing was written;
///   try again later.
///
/// A lease is taken over when its deadline passes or, on the same host, as soon as its
/// holder process is found dead.
#[no_mangle]
pub unsafe extern "C" fn backlite_lease_try_acquire(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    lease_ms: i64,
    value_out: *mut backlite_buf,
    lease_out: *mut *mut backlite_lease,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        let s = try_ref(s, "storage")?;
        let key = try_slice(key, key_len, "key")?;
        let value_out = try_mut(value_out, "value_out")?;
        let lease_out = try_mut(lease_out, "lease_out")?;
        let lease_for = duration(lease_ms, "lease_ms")?;
        match Lease::try_acquire(&s.inner, key, lease_for)? {
            LeaseOutcome::Hit(value, _) => {
                *value_out = backlite_buf::copy(&value)?;
                Ok(BACKLITE_RESULT_OK)
            }
            LeaseOutcome::Acquired(inner) => {
                *lease_out = Box::into_raw(Box::new(backlite_lease { inner }));
                Ok(BACKLITE_RESULT_NOT_FOUND)
            }
            LeaseOutcome::Busy(left) => Err(Failure::new(
                BACKLITE_RESULT_BUSY,
                format!(
                    "another owner is computing this key (its lease ends in {} ms)",
                    ms_left(Some(left))
                ),
            )),
        }
    })
}

/// Moves the lease's deadline to `lease_ms` (> 0) from now. `BACKLITE_RESULT_LEASE_LOST` if
/// another owner has taken it over (the lease is then useless: abandon it).
#[no_mangle]
pub unsafe extern "C" fn backlite_lease_extend(
    lease: *mut backlite_lease,
    lease_ms: i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        let lease = try_mut(lease, "lease")?;
        lease.inner.extend(duration(lease_ms, "lease_ms")?)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Stores `value` under the lease's key (as `backlite_storage_set` would), releases the
/// lease and frees it, whatever the result. `BACKLITE_RESULT_LEASE_LOST`: another
/// owner took the lease over, and nothing was stored.
#[no_mangle]
pub unsafe extern "C" fn backlite_lease_fulfill(
    lease: *mut backlite_lease,
    value: *const u8,
    value_len: usize,
    expiration_ms: i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        if lease.is_null() {
            return Err(Failure::null("lease"));
        }
        let lease = Box::from_raw(lease).inner;
        let value = try_slice(value, value_len, "value")?;
        let expiration = Expiration::from_ms(expiration_ms)?;
        lease.fulfill(value, expiration)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Releases the lease without storing anything (another caller may then take it) and
/// frees it. NULL is accepted and does nothing.
#[no_mangle]
pub unsafe extern "C" fn backlite_lease_abandon(lease: *mut backlite_lease) {
    if !lease.is_null() {
        super::infallible((), || Box::from_raw(lease).inner.abandon());
    }
}

/// Like `backlite_cached_call`, but at most one caller computes a given key at a time,
/// across all threads and processes sharing the file; the others wait for its result
/// (woken at once in this process, polling with backoff across processes) for up to
/// `wait_timeout_ms` (>= 0), then return `BACKLITE_RESULT_BUSY`. Different keys never
/// wait for each other. A failing compute returns `BACKLITE_RESULT_CALLBACK_FAILED`,
/// stores nothing and lets one waiter take over. The lease behind it lasts 60 s: a
/// holder that cannot be seen dead (on another host) blocks its key at most that long.
#[no_mangle]
pub unsafe extern "C" fn backlite_cached_call_exclusive(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    compute: backlite_compute_fn,
    user_data: *mut libc::c_void,
    expiration_ms: i64,
    wait_timeout_ms: i64,
    value_out: *mut backlite_buf,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        let s = try_ref(s, "storage")?;
        let key = try_slice(key, key_len, "key")?;
        let compute = compute.ok_or_else(|| Failure::null("compute"))?;
        let out = try_mut(value_out, "value_out")?;
        let expiration = Expiration::from_ms(expiration_ms)?;
        if wait_timeout_ms < 0 {
            return Err(Failure::invalid(format!(
                "wait_timeout_ms must be >= 0, got {wait_timeout_ms}"
            )));
        }
        let wait = Duration::from_millis(wait_timeout_ms as u64);
        let value = s
            .inner
            .cached_call_exclusive(key, expiration, wait, || run_compute(compute, user_data))?;
        *out = backlite_buf::copy(&value)?;
        Ok(BACKLITE_RESULT_OK)
    })
}
