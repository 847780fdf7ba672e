//! `backlite_storage_lifetime_stats` and `backlite_storage_zero_stats`: the counters
//! the file keeps over its life, beside the per-handle ones of `backlite_stats`.

use super::error::backlite_error;
use super::result::*;
use super::storage::backlite_storage;
use super::{boundary, try_mut, try_ref};

/// Counts since the file was created or last zeroed, by every handle of every process.
#[repr(C)]
pub struct backlite_lifetime_stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries evicted for size.
    pub evictions: u64,
    /// Expired entries removed.
    pub expirations: u64,
    /// When counting began (the file's creation, its upgrade, or the last zero), in
    /// milliseconds since the Unix epoch.
    pub since_ms: i64,
}

/// The file's lifetime counters. Hits and misses wait in memory and reach the file
/// with a process's next write (never a write per get): they include this process's
/// unwritten ones, and another process's once it has written (at the latest when its
/// last handle on the file closes).
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_lifetime_stats(
    s: *mut backlite_storage,
    stats_out: *mut backlite_lifetime_stats,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `stats_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(stats_out, "stats_out") }?;
        let st = s.inner.lifetime_stats()?;
        *out = backlite_lifetime_stats {
            hits: st.hits,
            misses: st.misses,
            evictions: st.evictions,
            expirations: st.expirations,
            since_ms: st.since_ms,
        };
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Sets the file's lifetime counters to zero and starts counting again from now
/// (`backlite zero-stats`). The per-handle counters of `backlite_stats` are kept.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_zero_stats(
    s: *mut backlite_storage,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        unsafe { try_ref(s, "storage") }?.inner.zero_stats()?;
        Ok(BACKLITE_RESULT_OK)
    })
}
