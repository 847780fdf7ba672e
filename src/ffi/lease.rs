//! `backlite_lease` and `backlite_cached_call_exclusive`: stampede protection for any
//! runtime (two-phase, non-blocking) and for blocking callers (single flight).

use super::buf::backlite_buf;
use super::cached::{backlite_compute_fn, run_compute};
use super::error::backlite_error;
use super::result::*;
use super::storage::backlite_storage;
use super::{boundary, try_mut, try_ref, try_slice, Failure, FfiResult};
use crate::{held_error, poll_delay};
use crate::{Expiration, Lease, LeaseOutcome, Storage};
use std::sync::Arc;
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
///   `lease_ms` (> 0) and not renewed unless you call `backlite_lease_extend`: compute
///   the value, then `backlite_lease_fulfill` (or `backlite_lease_abandon`). `*err` is
///   left untouched: this is not a failure.
/// - `BACKLITE_RESULT_LEASE_HELD`: another live owner is computing it; nothing was
///   written; try again later. `backlite_error_lease_time_left_ms(*err)` is the time
///   its lease has left.
///
/// A lease is taken over when its deadline passes or, on the same host and in the same
/// PID namespace, as soon as its holder process is found dead. To wait for a key
/// without blocking, with the library's timing and renewal, use `backlite_lease_step`.
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
        // SAFETY: the header's contract for this function, which is `acquire_into`'s.
        unsafe {
            acquire_into(s, key, key_len, value_out, lease_out, 0, |storage, key| {
                Lease::try_acquire(storage, key, duration(lease_ms, "lease_ms")?)
                    .map_err(Failure::from)
            })
        }
    })
}

/// One step of waiting for `key` without blocking, for event loops and async tasks
/// (the non-blocking form of `backlite_cached_call_exclusive`, with the same timing and
/// renewal). Pass `attempt` 0 for the first step of a wait, then the number of steps
/// taken before: only the first step counts a miss in the stats, and the pauses grow
/// with it.
/// - `BACKLITE_RESULT_OK`: a hit; `*value_out` gets the value.
/// - `BACKLITE_RESULT_NOT_FOUND`: a miss, and `*lease_out` gets the key's lease. The
///   library renews it (from a thread of its own, every third of the lease length set
///   by `backlite_options_set_lease_ms`) until `backlite_lease_fulfill` or
///   `backlite_lease_abandon`: compute the value for as long as it takes, then fulfil.
///   `*err` is left untouched.
/// - `BACKLITE_RESULT_LEASE_HELD`: another live owner is computing it. Wait
///   `backlite_error_retry_in_ms(*err)` milliseconds (without blocking your loop), then
///   take the next step with `attempt` + 1. Give up when your own deadline or
///   cancellation says so.
#[no_mangle]
pub unsafe extern "C" fn backlite_lease_step(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    attempt: u32,
    value_out: *mut backlite_buf,
    lease_out: *mut *mut backlite_lease,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: the header's contract for this function, which is `acquire_into`'s.
        unsafe {
            acquire_into(
                s,
                key,
                key_len,
                value_out,
                lease_out,
                attempt,
                |storage, key| storage.lease_step(key, attempt).map_err(Failure::from),
            )
        }
    })
}

/// The body of `backlite_lease_try_acquire` and `backlite_lease_step`: checks their
/// pointers, runs `acquire` on the storage and key, and hands its outcome to C: a hit
/// (OK, `*value_out`), a lease (NOT_FOUND, `*lease_out`), or a held key (LEASE_HELD,
/// retry after the pause of step `attempt`).
///
/// # Safety
/// `s` is NULL or a live storage handle, `key` valid for `key_len` bytes, `value_out`
/// and `lease_out` NULL or writable (the header's contract for both functions).
unsafe fn acquire_into(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    value_out: *mut backlite_buf,
    lease_out: *mut *mut backlite_lease,
    attempt: u32,
    acquire: impl FnOnce(&Arc<Storage>, &[u8]) -> Result<LeaseOutcome, Failure>,
) -> FfiResult {
    // SAFETY: `s` is NULL or a live storage handle (the caller's contract).
    let s = unsafe { try_ref(s, "storage") }?;
    // SAFETY: `key` is valid for `key_len` bytes (the caller's contract).
    let key = unsafe { try_slice(key, key_len, "key") }?;
    // SAFETY: `value_out` is NULL or writable (the caller's contract).
    let value_out = unsafe { try_mut(value_out, "value_out") }?;
    // SAFETY: `lease_out` is NULL or writable (the caller's contract).
    let lease_out = unsafe { try_mut(lease_out, "lease_out") }?;
    match acquire(&s.inner, key)? {
        LeaseOutcome::Hit(value, _) => {
            *value_out = backlite_buf::copy(&value)?;
            Ok(BACKLITE_RESULT_OK)
        }
        LeaseOutcome::Acquired(inner) => {
            *lease_out = Box::into_raw(Box::new(backlite_lease { inner }));
            Ok(BACKLITE_RESULT_NOT_FOUND)
        }
        LeaseOutcome::Held(left) => Err(held_error(left, poll_delay(attempt, left), None).into()),
    }
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
        // SAFETY: `lease` is NULL or a live lease (the header's contract).
        let lease = unsafe { try_mut(lease, "lease") }?;
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
        // SAFETY: `lease` came from `Box::into_raw` in this file and is released once
        // (the header's contract: exactly one of fulfill or abandon).
        let lease = unsafe { Box::from_raw(lease) }.inner;
        if !value.is_null() && value_len > isize::MAX as usize {
            // Longer than max_size can be: refused from the length alone, unread, as a
            // set of it is (TOO_LARGE, the older value removed).
            lease.refuse_unread(value_len, Expiration::from_ms(expiration_ms)?)?;
            return Ok(BACKLITE_RESULT_OK);
        }
        // SAFETY: `value` is valid for `value_len` bytes (the header's contract).
        let value = unsafe { try_slice(value, value_len, "value") }?;
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
        // SAFETY: `lease` came from `Box::into_raw` in this file and is released once
        // (the header's contract: exactly one of fulfill or abandon).
        super::infallible((), || unsafe { Box::from_raw(lease) }.inner.abandon());
    }
}

/// Like `backlite_cached_call`, but at most one caller computes a given key at a time,
/// across all threads and processes sharing the file; the others wait for its result
/// (woken at once in this process, polling with backoff across processes) for up to
/// `wait_timeout_ms` (>= 0), then return `BACKLITE_RESULT_LEASE_HELD`
/// (`backlite_error_lease_time_left_ms(*err)` gives the holder's time left). Different
/// keys never wait for each other. A call counts at most one miss in the stats, however
/// long it waits.
///
/// The library renews the lease while `compute` runs (every third of the lease length,
/// `backlite_options_set_lease_ms`, default 30 s), so a compute of any length is
/// computed once. A failing compute returns `BACKLITE_RESULT_CALLBACK_FAILED`, stores
/// nothing and lets one waiter take over. A holder that dies is taken over at once when
/// its death can be seen (same host and PID namespace); one that stops renewing (a
/// stopped process, or a dead one on another host or in another PID namespace) when its
/// lease runs out. A compute that never returns in a live process keeps its key.
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
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        let compute = compute.ok_or_else(|| Failure::null("compute"))?;
        // SAFETY: `value_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(value_out, "value_out") }?;
        let expiration = Expiration::from_ms(expiration_ms)?;
        if wait_timeout_ms < 0 {
            return Err(Failure::invalid(format!(
                "wait_timeout_ms must be >= 0, got {wait_timeout_ms}"
            )));
        }
        let wait = Duration::from_millis(wait_timeout_ms as u64);
        // SAFETY: `compute` and `user_data` are the caller's (the callback contract).
        let compute = || unsafe { run_compute(compute, user_data) };
        let value = s
            .inner
            .cached_call_exclusive(key, expiration, wait, compute)?;
        *out = backlite_buf::copy(&value)?;
        Ok(BACKLITE_RESULT_OK)
    })
}
