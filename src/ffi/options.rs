//! `backlite_options`: how to open a storage. Every setter validates its input.

use super::result::*;
use super::{boundary, infallible, try_mut, try_str, Failure};
use crate::{EvictionPolicy, Expiration, Options};
use std::time::Duration;

/// An eviction policy, in the seed's order.
pub type backlite_eviction_policy = i32;

/// "least-recently-used" (the default): evicts the entry whose last access is oldest.
pub const BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED: backlite_eviction_policy = 0;
/// "least-frequently-used": evicts the entry with the fewest hits, the least recently
/// used first among equals.
pub const BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED: backlite_eviction_policy = 1;
/// "most-recently-used": evicts the entry whose last access is newest.
pub const BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED: backlite_eviction_policy = 2;
/// "first-in-first-out": evicts the entry set earliest.
pub const BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT: backlite_eviction_policy = 3;
/// "last-in-first-out": evicts the entry set latest.
pub const BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT: backlite_eviction_policy = 4;

/// Use the storage's default expiration.
pub const BACKLITE_EXPIRATION_DEFAULT: i64 = -1;
/// Never expires.
pub const BACKLITE_EXPIRATION_NEVER: i64 = -2;

/// `backlite_options_set_file_threshold`: every value stays in the database file.
pub const BACKLITE_FILE_THRESHOLD_NEVER: i64 = -1;
/// The file threshold of `backlite_options_new`, in bytes (64 KiB, chosen by
/// measurement): values at least this long are kept in files of their own.
pub const BACKLITE_FILE_THRESHOLD_DEFAULT: i64 = 65_536;
const _: () = assert!(matches!(
    crate::DEFAULT_FILE_THRESHOLD,
    Some(t) if t == BACKLITE_FILE_THRESHOLD_DEFAULT as u64
));

/// Options for `backlite_storage_open`. Single owner; free with `backlite_options_free`.
pub struct backlite_options {
    pub(crate) inner: Options,
}

/// New options with the defaults: 1 GiB, least-recently-used, never expire, 5000 ms
/// busy timeout, no version tag. NULL only if memory is exhausted.
#[no_mangle]
pub extern "C" fn backlite_options_new() -> *mut backlite_options {
    infallible(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(backlite_options {
            inner: Options::default(),
        }))
    })
}

/// Frees options. NULL is accepted and does nothing.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_free(o: *mut backlite_options) {
    if !o.is_null() {
        // SAFETY: `o` came from `Box::into_raw` in `backlite_options_new` and is freed
        // once (the header's contract).
        infallible((), || drop(unsafe { Box::from_raw(o) }));
    }
}

/// The limit on the sum of value lengths, between 1 and INT64_MAX bytes.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_max_size(
    o: *mut backlite_options,
    bytes: u64,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        unsafe { try_mut(o, "options") }?
            .inner
            .set_max_size(bytes)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Values of at least `bytes` bytes (> 0) are kept in files of their own in the
/// folder `<cache>.values/` beside the cache file (default:
/// `BACKLITE_FILE_THRESHOLD_DEFAULT`); `BACKLITE_FILE_THRESHOLD_NEVER` keeps every value in the database
/// file. 0 or any other negative value is INVALID_ARGUMENT. An in-memory cache keeps
/// every value in memory; a cache whose file name is longer than 248 bytes (no room for
/// the folder's name, `NAME_MAX` being 255) keeps every value in the database file, as
/// with `BACKLITE_FILE_THRESHOLD_NEVER`.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_file_threshold(
    o: *mut backlite_options,
    bytes: i64,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        let threshold = match bytes {
            BACKLITE_FILE_THRESHOLD_NEVER => None,
            b if b > 0 => Some(b as u64),
            b => {
                return Err(Failure::invalid(format!(
                    "the file threshold must be > 0 bytes or BACKLITE_FILE_THRESHOLD_NEVER (-1), got {b}"
                )))
            }
        };
        o.inner.set_file_threshold(threshold)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// One of the `BACKLITE_EVICTION_POLICY_*` values; anything else is INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_eviction_policy(
    o: *mut backlite_options,
    p: backlite_eviction_policy,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        let policy = EvictionPolicy::from_index(p)
            .ok_or_else(|| Failure::invalid(format!("unknown eviction policy value {p}")))?;
        o.inner.set_eviction_policy(policy);
        Ok(BACKLITE_RESULT_OK)
    })
}

/// A policy by the seed's name: "least-recently-used", "least-frequently-used",
/// "most-recently-used", "first-in-first-out" or "last-in-first-out".
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_eviction_policy_name(
    o: *mut backlite_options,
    name: *const libc::c_char,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the header's contract).
        let policy: EvictionPolicy = unsafe { try_str(name, "name") }?.parse()?;
        o.inner.set_eviction_policy(policy);
        Ok(BACKLITE_RESULT_OK)
    })
}

/// The expiration of entries set with `BACKLITE_EXPIRATION_DEFAULT`: milliseconds >= 0,
/// or `BACKLITE_EXPIRATION_NEVER`.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_default_expiration_ms(
    o: *mut backlite_options,
    ms: i64,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        o.inner.set_default_expiration(Expiration::from_ms(ms)?)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// How long to wait for a lock held by another connection or process. Every value is
/// accepted; SQLite waits at most 2,147,483,647 ms (24.8 days), so longer ones wait that.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_busy_timeout_ms(
    o: *mut backlite_options,
    ms: u32,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        o.inner.set_busy_timeout(Duration::from_millis(ms.into()));
        Ok(BACKLITE_RESULT_OK)
    })
}

/// How long a lease taken by `backlite_cached_call_exclusive` or
/// `backlite_lease_step` lasts between two renewals (`ms` > 0; default 30000). The
/// library renews it every third of this while the value is computed, so it bounds
/// only how long a holder that stops renewing blocks its key: a stopped process (or
/// one whose death cannot be seen: another host, another PID namespace).
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_lease_ms(
    o: *mut backlite_options,
    ms: i64,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        if ms <= 0 {
            return Err(Failure::invalid(format!("lease_ms must be > 0, got {ms}")));
        }
        o.inner
            .set_lease_duration(Duration::from_millis(ms as u64))?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// A UTF-8 tag such as a serialisation format version. When the file was last opened
/// with a different tag, every entry is dropped on open (a file that never had a tag
/// adopts this one and keeps its entries). Without a tag, the file's tag is ignored.
/// Once another handle (of any process) has opened the file with another tag, a
/// handle of this tag reads and writes none of its values: a get (or any read of a
/// value that finds one) and every write (set, set_many, delete, clear, a cached
/// call's store, a lease) give INCOMPATIBLE and change nothing. Open the file again
/// with this tag to take it back (which drops the other tag's entries).
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_version_tag(
    o: *mut backlite_options,
    tag: *const libc::c_char,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        // SAFETY: `tag` is NULL or a NUL-terminated string (the header's contract).
        o.inner.set_version_tag(unsafe { try_str(tag, "tag") }?);
        Ok(BACKLITE_RESULT_OK)
    })
}
