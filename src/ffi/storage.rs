//! `backlite_storage`: the cache handle and its operations.

use super::buf::{backlite_buf, Malloced};
use super::error::backlite_error;
use super::options::backlite_options;
use super::result::*;
use super::{boundary, try_mut, try_ref, try_slice, try_str, Failure};
use crate::{Entry, Expiration, Options, Storage, Streamed};
use std::sync::Arc;
use std::time::Duration;

/// The longest value stored in the database file, in bytes, whatever max_size says: a
/// little under SQLite's 1,000,000,000-byte limit on one value, leaving room for the
/// rest of its row. A longer value is kept in a file of its own whatever the file
/// threshold; with `BACKLITE_FILE_THRESHOLD_NEVER` it gives TOO_LARGE (and
/// `backlite_cached_call` still returns it, OK).
pub const BACKLITE_MAX_VALUE_SIZE: u64 = 999_999_000;
const _: () = assert!(BACKLITE_MAX_VALUE_SIZE == crate::MAX_VALUE_SIZE);

/// The longest key, in bytes (SQLite bounds a key as it bounds a value). Every call
/// that takes a key gives INVALID_ARGUMENT for a longer one, before reading it.
pub const BACKLITE_MAX_KEY_SIZE: u64 = 999_999_000;
const _: () = assert!(BACKLITE_MAX_KEY_SIZE == crate::MAX_KEY_SIZE);

/// A cache handle, usable from any number of threads at once.
pub struct backlite_storage {
    /// Shared with the handle's outstanding leases, which may outlive it.
    pub(crate) inner: Arc<Storage>,
}

/// One item for `backlite_storage_set_many`.
#[repr(C)]
pub struct backlite_entry {
    pub key: *const u8,
    pub key_len: usize,
    pub value: *const u8,
    pub value_len: usize,
    /// >= 0, or `BACKLITE_EXPIRATION_DEFAULT` / `BACKLITE_EXPIRATION_NEVER`.
    pub expiration_ms: i64,
}

/// The file's counters and this handle's activity.
#[repr(C)]
pub struct backlite_stats {
    /// Live entries in the file.
    pub count: u64,
    /// Sum of value lengths in the file (what max_size bounds).
    pub total_size: u64,
    pub max_size: u64,
    /// This handle's lookups that found a live entry.
    pub hits: u64,
    /// This handle's lookups that did not.
    pub misses: u64,
    /// Entries this handle evicted for size.
    pub evictions: u64,
    /// Expired entries this handle removed.
    pub expirations: u64,
}

/// Called with each live key; return 0 to go on, anything else to stop.
pub type backlite_key_visitor = Option<
    unsafe extern "C" fn(user_data: *mut libc::c_void, key: *const u8, key_len: usize) -> i32,
>;

/// Called with each chunk of a value (`len` >= 1, at most 256 KiB; the bytes are valid
/// during the call only); return 0 to go on, anything else to stop.
pub type backlite_chunk_visitor =
    Option<unsafe extern "C" fn(user_data: *mut libc::c_void, chunk: *const u8, len: usize) -> i32>;

/// OK when there was a live entry, else NOT_FOUND. A miss is an answer, not a
/// failure: it returns through `Ok`, so `boundary` writes no error object for it.
fn found(present: bool) -> super::FfiResult {
    Ok(if present {
        BACKLITE_RESULT_OK
    } else {
        BACKLITE_RESULT_NOT_FOUND
    })
}

/// Milliseconds left, rounded up so that a live entry never reports 0.
pub(crate) fn ms_left(left: Option<Duration>) -> i64 {
    match left {
        None => super::options::BACKLITE_EXPIRATION_NEVER,
        Some(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1),
    }
}

/// Opens (or creates) the cache file at `path` (UTF-8; exactly ":memory:" opens a
/// private in-memory cache; any other name, "file:..." included, is a file path, never
/// a URI). `options` may be NULL for the defaults. A missing file is created, not its
/// parent folder. A file that is not a BackLite cache (a device, FIFO or socket too) is
/// left untouched and gives NOT_A_CACHE (IO for a directory); a newer schema gives
/// INCOMPATIBLE; a cache with more than one name (hard links) gives IO, unless this
/// process has it open already.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_open(
    path: *const libc::c_char,
    options: *const backlite_options,
    storage_out: *mut *mut backlite_storage,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `path` is NULL or a NUL-terminated string (the header's contract).
        let path = unsafe { try_str(path, "path") }?;
        // SAFETY: `storage_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(storage_out, "storage_out") }?;
        let defaults = Options::default();
        // SAFETY: `options` is NULL or a live options object (the header's contract).
        let options = unsafe { options.as_ref() }.map_or(&defaults, |o| &o.inner);
        super::fork::report_forks();
        let inner = Storage::open(path, options)?;
        *out = Box::into_raw(Box::new(backlite_storage {
            inner: Arc::new(inner),
        }));
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Closes the handle. NULL is accepted. Must not race with other calls on it. It writes
/// the handle's buffered hits first: while another process holds the file's write lock
/// it waits for it at most the busy timeout, then closes without them (they are hints
/// for the eviction order, lost as a killed process's are).
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_free(s: *mut backlite_storage) {
    if !s.is_null() {
        // SAFETY: `s` came from `Box::into_raw` in `backlite_storage_open`, and the
        // caller frees it once, with no other call on it running (the header's contract).
        super::infallible((), || drop(unsafe { Box::from_raw(s) }));
    }
}

/// Looks `key` up. OK: `*value_out` gets the value and `*expires_in_ms_out` (if not
/// NULL) the milliseconds left, or `BACKLITE_EXPIRATION_NEVER`. NOT_FOUND: no live
/// entry; `*err` is left untouched.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_get(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    value_out: *mut backlite_buf,
    expires_in_ms_out: *mut i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        // SAFETY: `value_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(value_out, "value_out") }?;
        let Some((value, left)) = s.inner.get_into(key, Malloced::new)? else {
            return Ok(BACKLITE_RESULT_NOT_FOUND);
        };
        *out = value.into_buf();
        // SAFETY: `expires_in_ms_out` is NULL or writable (the header's contract).
        if let Some(left_out) = unsafe { expires_in_ms_out.as_mut() } {
            *left_out = ms_left(left);
        }
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Hands the value under `key` to `visit` in chunks, in bounded library memory: a value
/// of any size is never held whole (an empty value makes no call), but for one of an
/// in-memory cache, which is copied out once first, so that `visit` may use the cache
/// (its values are in memory anyway). OK: every chunk was handed over and the value's
/// CRC matched; `*expires_in_ms_out` (if not NULL) as for `backlite_storage_get`.
/// NOT_FOUND (`*err` untouched): no live entry, or the value proved damaged after some
/// chunks were handed over (drop them; the entry is removed, as a get would).
/// CALLBACK_FAILED: `visit` returned non-zero. A hit or miss as for
/// `backlite_storage_get`. `visit` may call the library; on a cache file it runs inside
/// a read transaction, so the WAL is not checkpointed past it until the call returns.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_get_chunks(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    visit: backlite_chunk_visitor,
    user_data: *mut libc::c_void,
    expires_in_ms_out: *mut i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        let visit = visit.ok_or_else(|| Failure::null("visit"))?;
        // SAFETY: `visit` and `user_data` are the caller's, who vouches for them (the
        // callback contract); the chunk is valid for `chunk.len()` bytes during the call.
        let each = |chunk: &[u8]| unsafe { visit(user_data, chunk.as_ptr(), chunk.len()) } == 0;
        match s.inner.get_chunks(key, each)? {
            None | Some(Streamed::Damaged) => Ok(BACKLITE_RESULT_NOT_FOUND),
            Some(Streamed::Stopped) => Err(Failure::new(
                BACKLITE_RESULT_CALLBACK_FAILED,
                "the chunk visitor stopped the read",
            )),
            Some(Streamed::Done(left)) => {
                // SAFETY: `expires_in_ms_out` is NULL or writable (the header's contract).
                if let Some(left_out) = unsafe { expires_in_ms_out.as_mut() } {
                    *left_out = ms_left(left);
                }
                Ok(BACKLITE_RESULT_OK)
            }
        }
    })
}

/// Stores `value` under `key`. `expiration_ms`: >= 0 (0 = already expired: nothing is
/// stored, OK), `BACKLITE_EXPIRATION_DEFAULT` or `BACKLITE_EXPIRATION_NEVER`. Evicts by
/// the policy to make room; a value longer than max_size (or than
/// `BACKLITE_MAX_VALUE_SIZE` with `BACKLITE_FILE_THRESHOLD_NEVER`) gives TOO_LARGE and
/// evicts nothing. Either way, a set that stores nothing removes the older value under
/// `key` (a write: BUSY while another process holds the write lock; with no older value
/// there is nothing to write or wait for). The value is never copied whole: one kept
/// in a file is written from `value` straight to its file.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_set(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    expiration_ms: i64,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        if !value.is_null() && value_len > isize::MAX as usize {
            // Longer than max_size can be (and than any memory): TOO_LARGE from the
            // length alone, as any value over max_size, the older value removed.
            let expiration = Expiration::from_ms(expiration_ms)?;
            s.inner.refuse_unread(key, value_len, expiration)?;
            return Ok(BACKLITE_RESULT_OK);
        }
        // SAFETY: `value` is valid for `value_len` bytes (the header's contract).
        let value = unsafe { try_slice(value, value_len, "value") }?;
        s.inner
            .set(key, value, Expiration::from_ms(expiration_ms)?)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Stores `count` entries in one transaction, then evicts by the policy down to
/// max_size (entries of the batch may be evicted too). All or nothing: any invalid
/// entry or too-large value fails the call with no value stored, and the error's
/// message names the entry (`entries[i]...`); a too-large value's key loses its older
/// value (so that a later get returns no stale value, as after such a
/// `backlite_storage_set`), the other keys keep theirs. An entry already expired is never too
/// large: it stores nothing and removes the older value under its key, OK, as a
/// `backlite_storage_set` of it does. A batch that stores nothing (no entries,
/// or every one already expired) of keys with no older value, in a file within
/// max_size, has nothing to write or wait for. `count` must be the
/// number of entries at `entries`: one that cannot be (`count * sizeof(backlite_entry)`
/// over `PTRDIFF_MAX`, or more entries than memory can track) gives INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_set_many(
    s: *mut backlite_storage,
    entries: *const backlite_entry,
    count: usize,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        if entries.is_null() && count > 0 {
            return Err(Failure::null("entries"));
        }
        // A wrong count cannot be caught by reading (that reads past the array), only
        // against what could exist: the array must fit the address space, and nothing
        // is allocated for it until that holds, then only fallibly.
        if count > isize::MAX as usize / std::mem::size_of::<backlite_entry>() {
            return Err(Failure::invalid(format!(
                "count {count} is impossible: that many entries do not fit in memory"
            )));
        }
        let mut batch = Vec::new();
        batch.try_reserve_exact(count).map_err(|_| {
            Failure::invalid(format!(
                "count {count} is impossible: no memory to track that many entries"
            ))
        })?;
        let raw = if count == 0 {
            &[][..]
        } else {
            // SAFETY: the caller passes `count` entries at `entries` (the C contract),
            // and their size fits in an isize (checked above).
            unsafe { std::slice::from_raw_parts(entries, count) }
        };
        for (i, e) in raw.iter().enumerate() {
            // Names the entry only on failure: no formatting per entry on the way.
            let in_entry = |f: Failure| Failure::new(f.code, format!("entries[{i}].{}", f.message));
            // SAFETY: each entry's key and value are valid for their lengths (the
            // header's contract for `entries`).
            let key = unsafe { try_slice(e.key, e.key_len, "key") }.map_err(in_entry)?;
            let expiration = Expiration::from_ms(e.expiration_ms)
                .map_err(|e| in_entry(Failure::invalid(e.message())))?;
            let value = if !e.value.is_null() && e.value_len > isize::MAX as usize {
                if !s.inner.already_expired(expiration) {
                    // Longer than max_size can be: TOO_LARGE from the length alone, as
                    // a value over max_size (all or nothing: none is stored), and the
                    // older values under the keys refused so far go, as set_many's own
                    // refusal removes them.
                    let refused = batch.iter().filter(|e| s.inner.refuses(e)).map(|e| e.key);
                    s.inner.remove_refused(refused.chain([key]))?;
                    return Err(in_entry(Failure::new(
                        BACKLITE_RESULT_TOO_LARGE,
                        format!(
                            "value of {} bytes is larger than max_size ({} bytes): not stored",
                            e.value_len,
                            s.inner.max_size()
                        ),
                    )));
                }
                // Already expired: nothing of it is stored or read, as for a set of it;
                // the entry only removes the older value under its key.
                &[][..]
            } else {
                // SAFETY: as for the key.
                unsafe { try_slice(e.value, e.value_len, "value") }.map_err(in_entry)?
            };
            batch.push(Entry {
                key,
                value,
                expiration,
            });
        }
        s.inner.set_many(&batch)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Removes the entry under `key`: OK, or NOT_FOUND if there was no live entry (then
/// `*err` is left untouched). Without a remote tier, a key with no entry is NOT_FOUND
/// at once, a read: it does not wait for another process's write lock (a key whose
/// entry is there, live or expired, is a write: BUSY while that lock is held).
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_delete(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        found(s.inner.delete(key)?)
    })
}

/// OK if `key` has a live entry, else NOT_FOUND (`*err` left untouched). Not an
/// access: it changes no eviction order and no hit or miss counter.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_contains(
    s: *mut backlite_storage,
    key: *const u8,
    key_len: usize,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `key` is valid for `key_len` bytes (the header's contract).
        let key = unsafe { try_slice(key, key_len, "key") }?;
        found(s.inner.contains(key)?)
    })
}

/// Calls `visit` with every live key. A non-zero return stops early; the call still
/// returns OK. No lock is held while `visit` runs, so it may use this storage. The
/// keys listed are those set before the call began (and still live when reached): a
/// key set while it runs, by `visit` or anyone else, is left out, so a visitor that
/// writes new keys still sees the listing end.
/// Values read through from a remote tier that wait in memory are written first, so
/// they are listed.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_keys(
    s: *mut backlite_storage,
    visit: backlite_key_visitor,
    user_data: *mut libc::c_void,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        let visit = visit.ok_or_else(|| Failure::null("visit"))?;
        s.inner
            // SAFETY: `visit` and `user_data` are the caller's, who vouches for them (the
            // callback contract); the key is valid for `key.len()` bytes during the call.
            .keys(|key| unsafe { visit(user_data, key.as_ptr(), key.len()) } == 0)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// Removes every entry.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_clear(
    s: *mut backlite_storage,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        unsafe { try_ref(s, "storage") }?.inner.clear()?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// The file's counters (expired entries are not counted) and this handle's hits,
/// misses, evictions and expirations. Only reads (it works on a file that cannot be
/// written), apart from first writing the values read through from a remote tier
/// that wait in memory, so they are counted.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_stats(
    s: *mut backlite_storage,
    stats_out: *mut backlite_stats,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `stats_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(stats_out, "stats_out") }?;
        let st = s.inner.stats()?;
        *out = backlite_stats {
            count: st.count,
            total_size: st.total_size,
            max_size: st.max_size,
            hits: st.hits,
            misses: st.misses,
            evictions: st.evictions,
            expirations: st.expirations,
        };
        Ok(BACKLITE_RESULT_OK)
    })
}
