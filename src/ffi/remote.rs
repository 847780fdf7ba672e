//! The remote tier's options and counters: `backlite_options_set_remote*`,
//! `backlite_remote_mode`, `backlite_remote_stats`, `backlite_storage_remote_stats`,
//! `backlite_remote_url_masked`.

use super::buf::backlite_buf;
use super::error::backlite_error;
use super::options::backlite_options;
use super::result::*;
use super::storage::backlite_storage;
use super::{boundary, try_mut, try_ref, try_str, Failure};
use crate::{redact, RemoteMode};
use std::time::Duration;

/// How the remote tier is used.
pub type backlite_remote_mode = i32;

/// Reads through; sets, deletes and clears reach the remote before the call returns
/// (the default).
pub const BACKLITE_REMOTE_MODE_READ_WRITE: backlite_remote_mode = 0;
/// Reads through; never writes to the remote (sets, deletes and clears stay local).
/// The process's handles on the file do not read back what such a handle removed or
/// replaced: a deleted key (or one whose set was refused as too large or already
/// expired) misses the remote's value of then, until another client writes the key
/// again with other bytes or another expiry (the very value written again is not told
/// from the one hidden), and so does a key it set (for its latest 65,536 keys set) once that entry
/// expired or was evicted; a value a memoised call computed after a miss replaced none
/// (stored, or refused as too large for the file).
/// A set reads what it replaces (a get's read per key; a batch, for its first 64
/// keys), so a value another machine writes after it is read; a batch's further keys
/// learn it at their next look-up, which hides a value written before that too.
/// A clear empties the file only: the remote's values are read again.
pub const BACKLITE_REMOTE_MODE_READ_ONLY: backlite_remote_mode = 1;
/// Reads through; sets and deletes go to a bounded queue sent by a background thread,
/// never blocking the caller (a full queue drops the write and counts an error).
/// `backlite_storage_free` sends what is queued before it returns, and so does the
/// process's normal exit (`exit`, a return from `main`) for a handle never freed. A
/// clear, and the remote lease and value of `backlite_cached_call_exclusive`, still
/// reach the remote before the call returns, as in READ_WRITE (each round trip bounded
/// by the timeout): a clear hides every earlier entry from every client once it returns.
pub const BACKLITE_REMOTE_MODE_WRITE_BEHIND: backlite_remote_mode = 2;

/// A handle's remote activity.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct backlite_remote_stats {
    /// Local misses the remote answered.
    pub hits: u64,
    /// Local misses the remote did not answer (absent, expired, foreign or damaged).
    pub misses: u64,
    /// Writes (sets, deletes, clears) the remote acknowledged.
    pub writes: u64,
    /// Round trips that failed (refused, timed out, garbage), and write-behind writes
    /// dropped because the queue was full.
    pub errors: u64,
    /// Calls not sent while the remote was backed off.
    pub skipped: u64,
    /// 1 when the last round trip succeeded.
    pub connected: i32,
}

/// Adds a shared remote tier on Redis or Valkey:
/// `redis://[user[:password]@]host[:port][/db]`, "rediss://..." (TLS; the CA comes from
/// the system store, or the file named by SSL_CERT_FILE), "redis+unix:///path/to.sock",
/// or a cluster: "redis+cluster://host:port[,host:port...]" (TLS cluster:
/// "rediss+cluster://..."). NULL or "" removes it. Checked here: a malformed URL or an
/// unknown scheme is INVALID_ARGUMENT (the message never shows the password) and
/// changes nothing. Nothing is sent until `backlite_storage_open`, which succeeds even
/// when the remote is unreachable (`connected` is then 0).
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_remote(
    o: *mut backlite_options,
    url: *const libc::c_char,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        let url = if url.is_null() {
            None
        } else {
            // SAFETY: `url` is a NUL-terminated string (the header's contract).
            Some(unsafe { try_str(url, "url") }?)
        };
        o.inner.set_remote(url)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// The prefix of every remote key (default "backlite"): 1 to 64 ASCII letters, digits
/// or `. _ - : /`. The version tag also applies: keys are
/// `<namespace>:<version tag>:...`.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_remote_namespace(
    o: *mut backlite_options,
    ns: *const libc::c_char,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        // SAFETY: `ns` is NULL or a NUL-terminated string (the header's contract).
        let ns = unsafe { try_str(ns, "ns") }?;
        o.inner.set_remote_namespace(ns)?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// The bound on every remote round trip, connect included (default 250 ms); 0 is
/// INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_remote_timeout_ms(
    o: *mut backlite_options,
    ms: u32,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        o.inner
            .set_remote_timeout(Duration::from_millis(ms.into()))?;
        Ok(BACKLITE_RESULT_OK)
    })
}

/// One of the `BACKLITE_REMOTE_MODE_*` values; anything else is INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn backlite_options_set_remote_mode(
    o: *mut backlite_options,
    m: backlite_remote_mode,
) -> backlite_result {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: `o` is NULL or a live options object (the header's contract).
        let o = unsafe { try_mut(o, "options") }?;
        let mode = RemoteMode::from_index(m)
            .ok_or_else(|| Failure::invalid(format!("unknown remote mode value {m}")))?;
        o.inner.set_remote_mode(mode);
        Ok(BACKLITE_RESULT_OK)
    })
}

/// This handle's remote activity. A storage opened without a remote tier gives OK with
/// every field 0.
#[no_mangle]
pub unsafe extern "C" fn backlite_storage_remote_stats(
    s: *mut backlite_storage,
    out: *mut backlite_remote_stats,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `s` is NULL or a live storage handle (the header's contract).
        let s = unsafe { try_ref(s, "storage") }?;
        // SAFETY: `out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(out, "out") }?;
        let st = s.inner.remote_stats().unwrap_or_default();
        *out = backlite_remote_stats {
            hits: st.hits,
            misses: st.misses,
            writes: st.writes,
            errors: st.errors,
            skipped: st.skipped,
            connected: i32::from(st.connected),
        };
        Ok(BACKLITE_RESULT_OK)
    })
}

/// `url` as the library's messages show it, into `*masked_out` (free it with
/// `backlite_buf_free`; not NUL-terminated): the password of its user-info and any query
/// replaced by `***`, and where a password may be but cannot be told apart (a '?'
/// before the user-info's end, no "://", a port that is no number), everything it may be.
/// For a binding or program that prints or logs the URL it passes to
/// `backlite_options_set_remote`, so that it hides what the library hides. Any string
/// is accepted, well-formed or not; a string that is not UTF-8 is INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn backlite_remote_url_masked(
    url: *const libc::c_char,
    masked_out: *mut backlite_buf,
    err: *mut *mut backlite_error,
) -> backlite_result {
    boundary(err, || {
        // SAFETY: `masked_out` is NULL or writable (the header's contract).
        let out = unsafe { try_mut(masked_out, "masked_out") }?;
        // SAFETY: `url` is NULL or a NUL-terminated string (the header's contract).
        let url = unsafe { try_str(url, "url") }?;
        *out = backlite_buf::copy(redact(url).as_bytes())?;
        Ok(BACKLITE_RESULT_OK)
    })
}
