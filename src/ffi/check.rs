//! `backlite_storage_check` and `backlite_storage_vacuum`: maintenance.

use super::error::backlite_error;
use super::result::*;
use super::storage::backlite_storage;
use super::{boundary, try_mut, try_ref};

/// What `backlite_storage_check` found and, with repair, fixed.
#[repr(C)]
pub struct backlite_check_report {
    /// 1 when nothing is wrong (or everything wrong was repaired), else 0.
    pub healthy: i32,
    /// 1 when SQLite's integrity check found the database structure sound (after a
    /// repair, what the repair left). Structural damage beyond damaged entries cannot
    /// be repaired in place: delete the file (it is a cache).
    pub integrity_ok: i32,
    /// 1 when repair changed something (removed entries or values, rewrote counters).
    pub repaired: i32,
    /// Live entries examined.
    pub entries: u64,
    /// Entries whose row is damaged: a value that is missing or fails its checksum, a
    /// size that is not the value's length, or a column of the wrong type or NULL.
    pub damaged: u64,
    /// Stored values that no entry refers to.
    pub orphan_values: u64,
    /// `count` and `total_size` as the file recorded them before the check. Both
    /// UINT64_MAX when the file's counters themselves are damaged (not non-negative
    /// integers, or a clock behind the newest entry): until a check with repair
    /// rewrites them, every write fails with BACKLITE_RESULT_CORRUPT and writes nothing.
    pub recorded_count: u64,
    pub recorded_total_size: u64,
    /// `count` and `total_size` of the entries that passed.
    pub actual_count: u64,
    pub actual_total_size: u64,
}

/// Verifies the whole file: SQLite's integrity check, every value's CRC-32, and the
/// `count` / `total_size` counters against a recount. With `repair` non-zero, also
/// removes damaged entries and orphan values and rewrites the counters, in one
/// transaction. Returns OK when the check ran, whatever it found: read `*report_out`.
/// A file whose structure SQLite cannot read at all is such an answer too: OK, with
/// `healthy` and `integrity_ok` 0, nothing repaired, and every count 0 (none could be
/// made): delete the file (it is a cache). With repair, an orphan value file it cannot
/// remove (in a folder of values its user may not write) makes it IO, saying which,
/// once what it could repair is committed; a check without repair keeps counting it.
/// Without repair it only reads (a file that cannot be written can be checked), apart
/// from first writing the values read through from a remote tier that wait in memory.
/// Expired entries are left out of every figure.
/// It reads every entry: O(n), meant for maintenance, not the hot path.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_check(
    s: *mut backlite_storage,
    repair: i32,
    report_out: *mut backlite_check_report,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `report_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(report_out, "report_out") }?;
        // A file SQLite cannot walk is a report too (the core's `check_or_report`).
        let r = s.inner.check_or_report(repair != 0)?;
        *out = backlite_check_report {
            healthy: r.healthy() as i32,
            integrity_ok: r.integrity_ok as i32,
            repaired: r.repaired as i32,
            entries: r.entries,
            damaged: r.damaged,
            orphan_values: r.orphan_values,
            recorded_count: r.recorded_count,
            recorded_total_size: r.recorded_total_size,
            actual_count: r.actual_count,
            actual_total_size: r.actual_total_size,
        };
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Rebuilds the file so that the space of deleted entries goes back to the file
/// system, and truncates the write-ahead log. BUSY if other connections' readers kept
/// the log from being truncated (the rebuild itself is done): it waits for them up to
/// the busy timeout, trying again without holding the write lock between tries, so the
/// writes of other threads and processes go on meanwhile (a reader this thread holds
/// open, of a large value kept in the database, is such a reader).
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_vacuum(
    s: *mut backlite_storage,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        unsafe { try_ref(s, "storage") }?.inner.vacuum()?;
        Ok(BACKLITE_RESULT_OK)
    })
}
