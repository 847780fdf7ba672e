//! The hooks `Storage` calls: a local miss asks the remote, a set or delete reaches it
//! after the file, a clear hides everything on it, and `cached_call_exclusive` takes
//! its lease there. Each is one call in storage.rs or lease.rs; the remote never turns
//! a call into a failure.

use super::fill::{self, Buffered, FileState, Fill, Look, Ticket};
use super::{Hit, RemoteMode, RemoteStats};
use crate::entry::Entry;
use crate::error::SqliteContext;
use crate::error::{ErrorKind, Result};
use crate::expiration::Expiration;
use crate::fork::this_process;
use crate::lease::held_error;
use crate::storage::Storage;
use crate::table;
use crate::transact;
use rusqlite::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest pause between two polls of a key computed on another machine.
const MAX_POLL: Duration = Duration::from_millis(50);

fn ms(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// The deadline (epoch ms; `None`: never) of a value with `left` to live at `now`.
fn deadline_of(left: Option<Duration>, now: i64) -> Option<i64> {
    left.map(|l| now.saturating_add(l.as_millis() as i64))
}

/// The file's state (see fill.rs).
fn file_state(conn: &Connection) -> Result<FileState> {
    conn.prepare_cached(table::FILE_STATE)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .ctx("reading the cache state")
}

impl Storage {
    /// This handle's remote activity; `None` without a remote tier.
    pub fn remote_stats(&self) -> Option<RemoteStats> {
        self.remote.as_ref().map(|r| r.stats())
    }

    /// The remote tier's mode; `None` without a remote tier.
    pub fn remote_mode(&self) -> Option<RemoteMode> {
        self.remote.as_ref().map(|r| r.mode)
    }

    /// Before a call that reports what the file holds (stats, keys, check): the values
    /// read through and waiting in memory are written first, so that they are counted
    /// and listed like every value stored locally. Best effort: on a file this process
    /// cannot write they keep waiting, uncounted.
    pub(crate) fn write_waiting_fills(&self) {
        if !self.shared.fills.is_empty() {
            let _ = self.flush();
        }
    }

    /// After a local miss: the value read through (from memory if it waits there to be
    /// written, else from the remote) and its time left. With `store` (a get; not a
    /// contains), a value from the remote is kept to be written to the file with that
    /// time left (fill.rs).
    /// `pid` is this process. `count_miss` is the look-up's: a get's that is not its
    /// call's first (a poll while another owner computes the key, a look again after a
    /// barrier) counts nothing on the remote either.
    pub(crate) fn read_through(
        &self,
        pid: u32,
        key: &[u8],
        store: bool,
        count_miss: bool,
    ) -> Option<(Arc<[u8]>, Option<Duration>)> {
        let remote = self.remote.as_ref()?;
        let now = self.now();
        let fills = &self.shared.fills;
        // An in-memory cache has no other process and no writer thread: it stores at
        // once. A file whose state cannot be read keeps nothing.
        let ticket = match self.path().map(|_| fills.look(pid, key)) {
            None => None,
            Some(Look::Absent(ticket)) => Some(Ok(ticket)),
            Some(Look::ReadState) => match self.read(file_state) {
                Ok(state) => {
                    let (waiting, ticket) = fills.serve(pid, key, state, now);
                    if let Some((value, deadline)) = waiting {
                        let left = deadline.map(|d| ms(d.saturating_sub(now)));
                        return Some((value, left));
                    }
                    Some(Ok(ticket))
                }
                Err(_) => Some(Err(())),
            },
        };
        // The remote counts calls: each poll of a wait on the file's lease counted a
        // miss (17 for one call that waited 600 ms). A contains is a call of its own,
        // though the file does not count it.
        let count = count_miss || !store;
        let Hit { value, left, crc } = remote.get(pid, key, now, count)?;
        if store && (value.len() as u64) <= self.value_limit() {
            match ticket {
                Some(Ok(ticket)) => self.fill(key, &value, crc, left, now, ticket),
                None => self.fill_now(key, &value, crc, deadline_of(left, now), None),
                Some(Err(())) => {}
            }
        }
        Some((value, left))
    }

    /// Keeps a value read through to be written later; a large one is written now.
    fn fill(
        &self,
        key: &[u8],
        value: &Arc<[u8]>,
        crc: u32,
        left: Option<Duration>,
        now: i64,
        ticket: Ticket,
    ) {
        let deadline = deadline_of(left, now);
        if value.len() > fill::MAX_DEFERRED || self.goes_to_file(value.len()) {
            return self.fill_now(key, value, crc, deadline, Some(ticket));
        }
        let fill = Fill {
            value: value.clone(),
            crc,
            deadline,
            max_size: self.max_size() as i64,
            policy: self.eviction_policy(),
        };
        if self.shared.fills.buffer(key, fill, ticket) == Buffered::KeptStartWriter {
            transact::start_fill_writer(&self.shared, self.pool.busy_timeout(), self.clock_fn());
        }
    }

    /// Stores a value read through at once, if no entry is stored under `key` (and,
    /// with a `ticket`, if a fill taken with it would still be valid).
    /// `crc` is the CRC-32 of `value`; `deadline` (epoch ms, `None`: never) is when the
    /// remote's value ends: the time left counts from when the remote was asked, not
    /// from this write (the round trip, the wait for the write lock and a value file's
    /// writing came between: added, the entry outlived the remote's).
    fn fill_now(
        &self,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
        ticket: Option<Ticket>,
    ) {
        let fills = &self.shared.fills;
        // Best effort: a busy or full file still answers with the remote's value.
        let _ = self.write(|t| {
            let valid = ticket.is_none() || ticket.is_some_and(|k| fills.valid(key, k, t.start));
            if !valid || t.has_row(key)? {
                return Ok(());
            }
            let expiration = match deadline {
                None => Expiration::Never,
                Some(d) if d > t.now => Expiration::After(ms(d - t.now)),
                Some(_) => return Ok(()), // ended meanwhile
            };
            self.store(t, key, value, crc, expiration).map(drop)
        });
    }

    /// What a set of `value` would say of its size: too large for the file, or Ok.
    fn storable(&self, value: &[u8]) -> Result<()> {
        match self.too_large_to_store(value) {
            true => Err(self.too_large(value.len())),
            false => Ok(()),
        }
    }

    /// After a set: the value goes to the remote too; a value the file refused as too
    /// large removes the remote's older value, as it removed the local one. `computed`:
    /// a value computed after a look-up of its key missed (`Remote::set_computed`).
    pub(crate) fn write_through(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Expiration,
        outcome: &Result<()>,
        computed: bool,
    ) {
        let Some(remote) = &self.remote else { return };
        match outcome {
            Ok(()) if computed => remote.set_computed(key, value, expiration, self.now()),
            Ok(()) => remote.set(key, value, expiration, self.now()),
            Err(e) if e.kind() == ErrorKind::TooLarge && computed => {
                remote.remove_computed(key, self.now());
            }
            Err(e) if e.kind() == ErrorKind::TooLarge => {
                remote.remove(key, self.now());
            }
            Err(_) => {}
        }
    }

    pub(crate) fn write_through_many(&self, entries: &[Entry<'_>], outcome: &Result<()>) {
        if let (Some(remote), Ok(())) = (&self.remote, outcome) {
            remote.set_many(entries, self.now());
        }
    }

    /// After a delete: whether the remote had a value (read-write mode).
    pub(crate) fn delete_through(&self, key: &[u8]) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|r| r.remove(key, self.now()))
    }

    /// After a clear: every remote entry written before it is hidden from everyone.
    pub(crate) fn clear_through(&self) {
        if let Some(remote) = &self.remote {
            remote.clear();
        }
    }

    /// The compute of `cached_call_exclusive`, once across machines: under the remote
    /// lease, or the value another machine stored meanwhile. Without a usable remote,
    /// `compute` runs here (and its value is written through). Also returns how long
    /// the value lives here: `expiration` for a value computed here, the remote's time
    /// left for one found there (another machine set it, with its own expiration),
    /// counted from the clock reading returned with it (`None`: from when it is stored).
    /// Past `give_up` (`waited` after the call began), a lease another machine still
    /// holds is [`ErrorKind::LeaseHeld`]. `interrupted` is asked after each pause of
    /// that wait; an error it returns ends it.
    pub(crate) fn remote_single_flight(
        self: &Arc<Self>,
        key: &[u8],
        expiration: Expiration,
        give_up: Instant,
        waited: Duration,
        compute: impl FnOnce() -> Result<Vec<u8>>,
        interrupted: &mut dyn FnMut() -> Result<()>,
    ) -> Result<(Vec<u8>, Expiration, Option<i64>)> {
        let found = |hit: Hit, now: i64| {
            Ok((
                hit.value.to_vec(),
                hit.left.map_or(Expiration::Never, Expiration::After),
                Some(now),
            ))
        };
        let Some(remote) = &self.remote else {
            return compute().map(|v| (v, expiration, None));
        };
        let mut pause = Duration::from_millis(1);
        loop {
            match remote.try_lease(key) {
                None => {
                    let value = compute()?;
                    self.write_through(key, &value, expiration, &self.storable(&value), true);
                    return Ok((value, expiration, None));
                }
                Some(Ok(lease)) => {
                    // The previous holder may have stored the value and released the
                    // lease between our look-up and our taking it.
                    let now = self.now();
                    if let Some(hit) = remote.get(this_process(), key, now, false) {
                        remote.release(&lease);
                        return found(hit, now);
                    }
                    let renew_every = remote.lease_duration() / 3;
                    let (stop, stopped) = std::sync::mpsc::channel::<()>();
                    // A thread of its own, joined, not a scoped one: a scope registers
                    // the calling thread with Rust's runtime, and a C program's main
                    // thread never frees that at exit (valgrind: "possibly lost").
                    let (storage, held) = (Arc::clone(self), lease.clone());
                    let renewer = std::thread::Builder::new()
                        .name("backlite-remote-lease".into())
                        .spawn(move || {
                            let Some(remote) = &storage.remote else {
                                return;
                            };
                            // A renewal that could not reach the remote (one timeout, a
                            // back-off after another call's failure) is tried again soon:
                            // the lease is still ours until its deadline, and giving up
                            // would let another machine compute the key at the same time.
                            let mut wait = renew_every;
                            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                                stopped.recv_timeout(wait)
                            {
                                wait = match remote.renew(&held) {
                                    Some(true) => renew_every,
                                    Some(false) => break,
                                    None => renew_every / 4,
                                };
                            }
                        });
                    let value = compute();
                    drop(stop);
                    if let Ok(renewer) = renewer {
                        let _ = renewer.join();
                    }
                    match &value {
                        // Stored nowhere, as a set of it would be: the file refuses it,
                        // and the remote's older value (a write of the key still queued
                        // here) goes too. Stored there, the next local miss read it back.
                        Ok(v) if self.too_large_to_store(v) => {
                            remote.remove(key, self.now());
                            remote.release(&lease);
                        }
                        Ok(v) => {
                            remote.fulfill(&lease, v, expiration, self.now());
                        }
                        Err(_) => remote.release(&lease),
                    }
                    return value.map(|v| (v, expiration, None));
                }
                Some(Err(())) => {
                    let now = self.now();
                    if let Some(hit) = remote.get(this_process(), key, now, false) {
                        return found(hit, now);
                    }
                    let now = Instant::now();
                    if now >= give_up {
                        // LEASE_HELD with the holder's time left, as for a holder on
                        // this file (BUSY means a lock not obtained in the busy timeout).
                        let left = remote
                            .lease_left(key)
                            .unwrap_or_else(|| remote.lease_duration());
                        return Err(held_error(left, pause, Some(waited)));
                    }
                    std::thread::sleep(pause.min(give_up - now));
                    interrupted()?;
                    pause = (pause * 2).min(MAX_POLL);
                }
            }
        }
    }
}
