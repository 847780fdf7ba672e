//! Deferred local fill: a value read through from the remote is not written to the
//! local file on the read path (a write transaction costs several times the round
//! trip). It waits here, in memory shared by this process's handles on the file, is
//! served from here to their gets, and is written later as "insert if absent" by the
//! fill writer (a thread started once enough waits), by `flush`, or when a handle
//! closes. A process killed meanwhile loses only these fills: they are a copy of the
//! remote.
//!
//! No get may return a value that was replaced, deleted, cleared or has expired since
//! it was buffered. How each is ruled out:
//!
//! - **This process's writes**: every write of a key through any handle drops its fill
//!   (`Txn::remove_key`; `clear` drops all) and bumps `epoch`, again once the write has
//!   reached the remote too: a remote read that began before a write ends buffers
//!   nothing (it may have read the remote before the write reached it). A set, delete
//!   or clear is marked under way from before its local write until its remote one
//!   ends (`begin_removal`): a read that missed the file after its local write, and
//!   found the remote's value before the remote's removal, keeps it neither here nor
//!   in the file (a value over `MAX_DEFERRED` is stored at once, and the fill writer
//!   may run). A set leaves the file no row when its value is refused as too large or
//!   already expired, and it removes the remote's older value too.
//! - **Other processes' writes to the file**: fills are valid only while the file
//!   stays in one state, `stamp`, apart from this process's own writes. The state is
//!   the file's `(clock, count, total_size)` (counters.rs), which never repeats: every insert
//!   ticks the clock, every removal lowers `count`, and a delete of an absent key or a
//!   clear by a handle with a remote ticks the clock too (storage.rs), so that a
//!   process whose file holds no row for the key still leaves a trace. (`PRAGMA
//!   data_version` says as much, but per connection, and a handle reads on any of its
//!   pool's connections.) A fill is served only after the state is read again and
//!   found to be `stamp`; each transaction of this process compares its start state
//!   with `stamp` and carries `stamp` to its end state (it dropped the fills of the
//!   keys it wrote itself). Whoever finds the file in another state drops every fill
//!   (any could be stale), bumps `epoch` and adopts that state. A fill buffered while
//!   the file is already in another state is dropped with the others when that is
//!   found; it is never served or written before. So a remote read costs no read of
//!   the file beyond the look-up that missed; only serving a fill does.
//! - A get reads the local row first: a newer local value always wins over a fill,
//!   and a fill is written only where no row is.
//! - **Expiry**: a fill carries the deadline the remote gave it; it is not served or
//!   written once due.
//! - **Size**: a value larger than the file's limit is not kept; when a fill is written
//!   the handle's size limit and eviction policy apply, as for a set.
//!
//! What remains is the race every read-through cache has: a write by another process
//! that reaches its file before this process learns the file's state and the remote
//! only after this process read it.

use crate::eviction::EvictionPolicy;
use crate::expiration::is_due;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The file's `(clock, count, total_size)` (counters.rs): it changes with every write that
/// inserts or removes an entry, and never repeats (see above).
pub(crate) type FileState = (i64, i64, i64);

/// Bytes of values waiting at most; a fill past that is not kept (the get still
/// answers with it).
const MAX_BYTES: usize = 8 << 20;
/// Fills waiting at most (bounds the keys' memory too).
const MAX_FILLS: usize = 16_384;
/// The fill writer starts once this many bytes, or `WRITE_AT_FILLS` fills, wait: one
/// transaction writes them all.
const WRITE_AT_BYTES: usize = 1 << 20;
const WRITE_AT_FILLS: usize = 1024;
/// A larger value is written on the read path at once, not kept in memory.
pub(crate) const MAX_DEFERRED: usize = 1 << 20;

/// A value read through, waiting to be written.
#[derive(Clone)]
pub(crate) struct Fill {
    pub value: Arc<[u8]>,
    pub crc: u32,
    /// Epoch ms in the clock of the handle that read it; `None`: never expires.
    pub deadline: Option<i64>,
    /// The size limit and policy of that handle, applied when it is written.
    pub max_size: i64,
    pub policy: EvictionPolicy,
}

/// Taken before the remote is asked; `buffer` needs it.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    /// The process that took it (asking the system is a system call: once per get).
    pid: u32,
}

/// A fill served: its value and deadline.
pub(crate) type Waiting = (Arc<[u8]>, Option<i64>);

/// What `look` found for a key missing from the file.
pub(crate) enum Look {
    /// No fill: ask the remote.
    Absent(Ticket),
    /// Read the file's state and call `serve` (a fill waits, or no state is known).
    ReadState,
}

/// What `buffer` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Buffered {
    Kept,
    /// Kept, and the caller is to start the fill writer.
    KeptStartWriter,
    /// Not kept (stale, full, or too large for the file).
    Dropped,
}

#[derive(Default)]
struct Inner {
    /// The process these fills belong to: a forked child starts empty.
    pid: u32,
    fills: HashMap<Vec<u8>, Fill>,
    bytes: usize,
    /// The file state every fill is valid in (see the module comment).
    stamp: Option<FileState>,
    /// Bumped by every write of this process (see the module comment).
    epoch: u64,
    /// Sets and deletes under way in this process, by key, and clears: from before
    /// their local write until their remote one is done. A remote read meanwhile may
    /// find the value they remove there (the calls overlap); what it read is kept
    /// neither in memory nor in the file. The epoch alone let a read whose ticket was
    /// taken after the local write store the value before the remote's removal ended,
    /// and it stayed.
    removing: HashMap<Vec<u8>, usize>,
    clearing: usize,
    writer_running: bool,
    /// The last fill write failed (a read-only or busy file): no writer is started
    /// until a write succeeds.
    writer_failed: bool,
}

impl Inner {
    fn drop_all(&mut self) {
        self.fills.clear();
        self.bytes = 0;
    }

    /// Whether a delete of `key` or a clear is under way (`removing`).
    fn removal_under_way(&self, key: &[u8]) -> bool {
        self.clearing > 0 || (!self.removing.is_empty() && self.removing.contains_key(key))
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        // Every set of a new key asks, and without a remote tier there is never a fill:
        // hashing the key for an empty map was 230 of a set's 31,700 instructions.
        if self.fills.is_empty() {
            return false;
        }
        match self.fills.remove(key) {
            Some(f) => {
                self.bytes -= f.value.len();
                true
            }
            None => false,
        }
    }

    /// Adopts `state`, read from the file: if it is not `stamp`, what is pending could
    /// be stale and goes, and remote reads under way buffer nothing.
    fn settle(&mut self, state: FileState) {
        if self.stamp != Some(state) {
            self.drop_all();
            self.epoch += 1;
            self.stamp = Some(state);
        }
    }
}

/// The pending fills of this process on one file.
#[derive(Default)]
pub(crate) struct Fills {
    inner: Mutex<Inner>,
}

impl Fills {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.lock_in(crate::fork::this_process())
    }

    /// `lock` in process `pid` (this one).
    fn lock_in(&self, pid: u32) -> MutexGuard<'_, Inner> {
        let mut inner = lock(&self.inner);
        if inner.pid != pid {
            *inner = Inner {
                pid,
                ..Inner::default()
            };
        }
        inner
    }

    /// After a local miss: whether the file's state must be read (and `serve` called)
    /// before the remote is asked.
    /// `pid` is this process.
    pub(crate) fn look(&self, pid: u32, key: &[u8]) -> Look {
        let inner = self.lock_in(pid);
        if inner.stamp.is_none() || inner.fills.contains_key(key) {
            return Look::ReadState;
        }
        Look::Absent(Ticket {
            epoch: inner.epoch,
            pid,
        })
    }

    /// The fill of `key`, if one is valid in `state` (read after the local miss) and
    /// not due at `now`; and the ticket to buffer one read from the remote.
    pub(crate) fn serve(
        &self,
        pid: u32,
        key: &[u8],
        state: FileState,
        now: i64,
    ) -> (Option<Waiting>, Ticket) {
        let mut inner = self.lock_in(pid);
        inner.settle(state);
        let ticket = Ticket {
            epoch: inner.epoch,
            pid,
        };
        let found = match inner.fills.get(key) {
            Some(f) if is_due(f.deadline, now) => {
                inner.remove(key);
                None
            }
            Some(f) => Some((f.value.clone(), f.deadline)),
            None => None,
        };
        (found, ticket)
    }

    /// Keeps `fill` of `key`, read from the remote after `ticket` was taken, if nothing
    /// was written meanwhile and there is room.
    pub(crate) fn buffer(&self, key: &[u8], fill: Fill, ticket: Ticket) -> Buffered {
        let mut inner = self.lock_in(ticket.pid);
        if inner.epoch != ticket.epoch || inner.stamp.is_none() || inner.removal_under_way(key) {
            return Buffered::Dropped;
        }
        inner.remove(key);
        let len = fill.value.len();
        if inner.bytes + len > MAX_BYTES || inner.fills.len() >= MAX_FILLS {
            return Buffered::Dropped;
        }
        inner.bytes += len;
        inner.fills.insert(key.to_vec(), fill);
        let due = inner.bytes >= WRITE_AT_BYTES || inner.fills.len() >= WRITE_AT_FILLS;
        if due && !inner.writer_running && !inner.writer_failed {
            inner.writer_running = true;
            return Buffered::KeptStartWriter;
        }
        Buffered::Kept
    }

    /// Whether a fill of `key` taken with `ticket` would still be kept, in a
    /// transaction that began in state `start`.
    pub(crate) fn valid(&self, key: &[u8], ticket: Ticket, start: FileState) -> bool {
        let inner = self.lock_in(ticket.pid);
        inner.epoch == ticket.epoch && inner.stamp == Some(start) && !inner.removal_under_way(key)
    }

    /// A set or delete of `key` (`None`: a clear) by this process begins: as `forget`,
    /// and no fill of it is kept until `end_removal`.
    pub(crate) fn begin_removal(&self, key: Option<&[u8]>) -> bool {
        let mut inner = self.lock();
        match key {
            Some(k) => *inner.removing.entry(k.to_vec()).or_default() += 1,
            None => inner.clearing += 1,
        }
        drop(inner);
        self.forget(key)
    }

    /// The write `begin_removal` began has reached the remote, or given up.
    pub(crate) fn end_removal(&self, key: Option<&[u8]>) {
        let mut inner = self.lock();
        match key {
            Some(k) => {
                if let Some(n) = inner.removing.get_mut(k) {
                    *n -= 1;
                    if *n == 0 {
                        inner.removing.remove(k);
                    }
                }
            }
            None => inner.clearing = inner.clearing.saturating_sub(1),
        }
        drop(inner);
        self.forget(key);
    }

    /// A write of `key` (`None`: a clear) by this process: its fill goes, and remote
    /// reads under way buffer nothing. Returns whether a fill was dropped.
    pub(crate) fn forget(&self, key: Option<&[u8]>) -> bool {
        self.forget_in(crate::fork::this_process(), key)
    }

    /// `forget` in process `pid` (this one).
    pub(crate) fn forget_in(&self, pid: u32, key: Option<&[u8]>) -> bool {
        let mut inner = self.lock_in(pid);
        inner.epoch += 1;
        match key {
            Some(k) => inner.remove(k),
            None => {
                let any = !inner.fills.is_empty();
                inner.drop_all();
                any
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().fills.is_empty()
    }

    /// The fills a write transaction of this process that began in state `start` is
    /// to write (transact.rs): none if the file is in another state than theirs.
    pub(crate) fn to_write(&self, start: FileState) -> Vec<(Vec<u8>, Fill)> {
        let inner = self.lock();
        if inner.stamp != Some(start) {
            return Vec::new();
        }
        inner
            .fills
            .iter()
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect()
    }

    /// After a transaction of this process committed, having moved the file from state
    /// `start` to `end` and written the fills `written`, in process `pid` (this one).
    pub(crate) fn committed(
        &self,
        pid: u32,
        start: FileState,
        end: FileState,
        written: Vec<(Vec<u8>, Fill)>,
    ) {
        let mut inner = self.lock_in(pid);
        match inner.stamp {
            None => return,
            Some(s) if s == start => inner.stamp = Some(end),
            // Another process wrote the file since the fills' state.
            Some(_) => inner.settle(end),
        }
        for (key, f) in written {
            // Unless it was replaced meanwhile by a newer fill.
            if inner
                .fills
                .get(&key)
                .is_some_and(|now| Arc::ptr_eq(&now.value, &f.value))
            {
                inner.remove(&key);
            }
        }
        if inner.fills.is_empty() {
            inner.writer_failed = false;
        }
    }

    /// Called by the fill writer after each write (`ok`: it committed). Returns true
    /// when it is to write again: enough fills arrived meanwhile.
    pub(crate) fn writer_wrote(&self, ok: bool) -> bool {
        let mut inner = self.lock();
        if !inner.writer_running {
            return false; // a forked child's copy: the writer is the parent's
        }
        let again = ok && (inner.bytes >= WRITE_AT_BYTES || inner.fills.len() >= WRITE_AT_FILLS);
        inner.writer_running = again;
        inner.writer_failed = !ok;
        again
    }
}
