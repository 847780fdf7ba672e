//! Remote keys whose last write never reached the remote (it failed, timed out, was
//! dropped from a full write-behind queue, or was skipped while the remote was backed
//! off). The remote may still hold an older value for such a key, which other machines
//! would read; so each is unlinked before this handle's next remote call, and until
//! that succeeds no call of this handle reads or writes that key on the remote (a later
//! write would be undone by the unlink). Other keys go on: on a cluster, a key whose
//! slot is backed off waits while the others are unlinked.

use super::client::Client;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Keys remembered at most; past that, only a clear of the remote can promise that no
/// older value is left, and one is asked for (memory stays bounded).
const MAX_UNSYNCED: usize = 65_536;

#[derive(Default)]
pub(crate) struct Unsynced {
    keys: Mutex<Lost>,
    /// Whether `keys` may be non-empty: the common case costs one load, no lock.
    any: AtomicBool,
    /// More keys than `MAX_UNSYNCED` were lost: the remote must be cleared.
    overflowed: AtomicBool,
    /// The process whose flush is under way (0: none). The keys stay remembered until
    /// their unlink succeeded, so a second flush meanwhile would send them again; one in
    /// a child made by `fork` is not waited for (no thread of the child runs it).
    flushing: AtomicU32,
}

/// The remembered remote keys, by the key they name in any generation: a lost write is
/// undone in the live generation too (`unlink_lost`), so the key is held back there as
/// well, though the handle lost it in an older one (a key whose slot is backed off waits
/// for the slot while the handle learns another client's clear).
#[derive(Default)]
struct Lost {
    by_name: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    len: usize,
}

impl Lost {
    /// Forgets `redis_key` (unlinked), if it is still remembered.
    fn remove(&mut self, redis_key: &[u8]) {
        let name = name_of(redis_key);
        let Some(same) = self.by_name.get_mut(&name) else {
            return;
        };
        if let Some(i) = same.iter().position(|k| k == redis_key) {
            same.swap_remove(i);
            self.len -= 1;
            if same.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }
}

/// `redis_key` without its generation: `<prefix>d{<gen>:<key>}` (the prefix has no
/// `{`, see `Keys`) as `<prefix>d{<key>}`.
fn name_of(redis_key: &[u8]) -> Vec<u8> {
    let Some(open) = redis_key.iter().position(|&b| b == b'{') else {
        return redis_key.to_vec();
    };
    match redis_key[open..].iter().position(|&b| b == b':') {
        Some(colon) => [&redis_key[..=open], &redis_key[open + colon + 1..]].concat(),
        None => redis_key.to_vec(),
    }
}

impl Unsynced {
    /// Remembers that the writes of `redis_keys` did not reach the remote.
    pub(crate) fn add(&self, redis_keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut lost = lock(&self.keys);
        for k in redis_keys {
            let same = lost.by_name.entry(name_of(&k)).or_default();
            if !same.contains(&k) {
                same.push(k);
                lost.len += 1;
            }
        }
        if lost.len > MAX_UNSYNCED {
            *lost = Lost::default();
            self.overflowed.store(true, Relaxed);
        }
        self.any.store(lost.len > 0, Relaxed);
    }

    /// Whether more keys were lost than can be remembered (and forgets it: the caller
    /// clears the remote).
    pub(crate) fn take_overflow(&self) -> bool {
        // A load first: the common case writes nothing (a swap is a locked write).
        self.overflowed.load(Relaxed) && self.overflowed.swap(false, Relaxed)
    }

    /// Whether some key may be remembered (one load, no lock).
    pub(crate) fn any(&self) -> bool {
        self.any.load(Relaxed)
    }

    /// Whether a last write of `redis_key`'s key, in its generation or another, is
    /// still to be unlinked.
    pub(crate) fn holds(&self, redis_key: &[u8]) -> bool {
        self.any() && lock(&self.keys).by_name.contains_key(&name_of(redis_key))
    }

    /// Unlinks the remembered keys with `unlink` (the keys it could not unlink are
    /// kept), but those of a backed-off cluster slot; true if none is left (the others
    /// are kept for the next call). Each key is forgotten only once its unlink has
    /// succeeded: they were all let go when the unlink was sent, and another thread's
    /// get meanwhile read the value a lost delete removes (and stored it in the file).
    /// While another thread of the process flushes, false: its keys are still held.
    pub(crate) fn flush(
        &self,
        client: &Client,
        unlink: impl FnOnce(&[Vec<u8>]) -> Vec<Vec<u8>>,
    ) -> bool {
        if !self.any() {
            return true;
        }
        let me = crate::fork::this_process();
        if self.flushing.swap(me, Relaxed) == me {
            return false;
        }
        let (lost, waiting): (Vec<Vec<u8>>, Vec<Vec<u8>>) = lock(&self.keys)
            .by_name
            .values()
            .flatten()
            .cloned()
            .partition(|k| !client.slot_of(k).is_some_and(|s| client.slot_backed_off(s)));
        let left = if lost.is_empty() {
            Vec::new()
        } else {
            unlink(&lost)
        };
        {
            let left: std::collections::HashSet<&[u8]> = left.iter().map(Vec::as_slice).collect();
            let mut k = lock(&self.keys);
            for key in lost.iter().filter(|key| !left.contains(key.as_slice())) {
                k.remove(key);
            }
            self.any.store(k.len > 0, Relaxed);
        }
        self.flushing.store(0, Relaxed);
        left.is_empty() && waiting.is_empty()
    }
}

/// How often a write-behind thread looks whether another thread's round trip on its
/// keys has ended (`InQueue::begin_sending`).
const SENDING_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// Keys (as the caller names them) with a write waiting in the write-behind queue of
/// one of the process's handles on the file. Until it is sent, the remote still holds
/// what that write removes or replaces: a handle that read the key from the remote
/// then would get a value deleted (or overwritten) before, and store it in the file
/// again. So no handle reads such a key from the remote until the write was sent, or
/// remembered as lost (`Unsynced`, which then holds the key).
///
/// It also keeps the process's writes of a key in order across handles: each handle has
/// a queue and a thread of its own, and a write made later through another handle (sent
/// at once, or from another queue) landed first, then the older queued one over it,
/// which the remote kept. A queued write is dropped, not sent, once a later write of
/// its key was made (`supersede`, `add`); and a write is not sent while another thread
/// sends an older one of its key (it waits for that round trip, bounded by the timeout).
#[derive(Default)]
pub(crate) struct InQueue {
    inner: Mutex<Waiting>,
    /// Notified when writes being sent are done (`end_sending`).
    done: Condvar,
    /// Whether `keys` may be non-empty: the common case costs one load, no lock.
    any: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    /// The process the counts are of (`lock`).
    pid: u32,
    keys: HashMap<Vec<u8>, KeyState>,
    /// The number of the last write numbered (`add`, `supersede`).
    last: u64,
}

#[derive(Default)]
struct KeyState {
    /// Writes of the key waiting in a queue.
    queued: usize,
    /// Writes of the key being sent by a write-behind thread.
    sending: usize,
    /// The number of the key's latest write: a queued write with a lower one is older.
    newest: u64,
}

impl Waiting {
    /// Forgets `key` once no write of it waits or is being sent.
    fn settle(&mut self, key: &[u8]) {
        if self
            .keys
            .get(key)
            .is_some_and(|k| k.queued == 0 && k.sending == 0)
        {
            self.keys.remove(key);
        }
    }
}

impl InQueue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        let mut inner = lock(&self.inner);
        let pid = crate::fork::this_process();
        if inner.pid != pid {
            // A forked child keeps its parent's keys, never read back here either (the
            // parent's queue is still to be sent, by the parent), but their writes being
            // sent are the parent's thread's, which never ends them here: no write of
            // the child waits for them.
            for state in inner.keys.values_mut() {
                state.queued += std::mem::take(&mut state.sending);
            }
            inner.pid = pid;
        }
        inner
    }

    fn set_any(&self, inner: &Waiting) {
        self.any.store(!inner.keys.is_empty(), Relaxed);
    }

    /// Counts a queued write of each of `keys`, the latest of each; returns its number.
    pub(crate) fn add<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut inner = self.lock();
        inner.last += 1;
        let number = inner.last;
        for k in keys {
            let state = inner.keys.entry(k.to_vec()).or_default();
            state.queued += 1;
            state.newest = number;
        }
        self.set_any(&inner);
        number
    }

    /// After writes of `keys` were dropped before they were queued: one queued write
    /// fewer each.
    pub(crate) fn remove<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        let mut inner = self.lock();
        for k in keys {
            if let Some(state) = inner.keys.get_mut(k) {
                state.queued = state.queued.saturating_sub(1);
                inner.settle(k);
            }
        }
        self.set_any(&inner);
    }

    /// A write-behind thread takes the writes of `calls` (each with its number, from
    /// `add`) to send, once no other thread sends a write of their keys (`key` names
    /// a write's): those of a key written again since (a later number) are dropped, the
    /// others are marked as being sent until `end_sending` with the keys returned.
    pub(crate) fn begin_sending<W>(
        &self,
        calls: &mut [(u64, &mut Vec<W>)],
        key: impl Fn(&W) -> &[u8],
    ) -> Vec<Vec<u8>> {
        let mut inner = self.lock();
        while calls.iter().any(|(_, writes)| {
            writes
                .iter()
                .any(|w| inner.keys.get(key(w)).is_some_and(|s| s.sending > 0))
        }) {
            // The thread is in a step (fork.rs) and waits for another thread's round
            // trip: it waits outside the step, and without the lock (a condition
            // variable would take the lock back outside the step, where a fork could
            // copy it held), or a fork would wait for a thread that waits for a round
            // trip that waits for the fork.
            drop(inner);
            crate::fork::outside_step(|| std::thread::sleep(SENDING_POLL));
            inner = self.lock();
        }
        let mut sending = Vec::new();
        for (number, writes) in calls.iter_mut() {
            writes.retain(|w| {
                let k = key(w);
                let Some(state) = inner.keys.get_mut(k) else {
                    return true; // never (each queued write counted its key): sent
                };
                state.queued = state.queued.saturating_sub(1);
                if state.newest > *number {
                    inner.settle(k);
                    return false;
                }
                state.sending += 1;
                sending.push(k.to_vec());
                true
            });
        }
        self.set_any(&inner);
        sending
    }

    /// The writes `begin_sending` took were sent, or remembered as lost: the remote may
    /// be read for their keys again, and later writes of them may go.
    pub(crate) fn end_sending(&self, keys: &[Vec<u8>]) {
        let mut inner = self.lock();
        for k in keys {
            if let Some(state) = inner.keys.get_mut(k) {
                state.sending = state.sending.saturating_sub(1);
                inner.settle(k);
            }
        }
        self.set_any(&inner);
        drop(inner);
        self.done.notify_all();
    }

    /// A write of `keys` about to be sent at once (not queued): the queued writes of
    /// them are older, and dropped unsent; a write of them being sent is waited for, so
    /// that it cannot land after this one.
    pub(crate) fn supersede<'a>(&self, keys: impl Iterator<Item = &'a [u8]> + Clone) {
        if !self.any.load(Relaxed) {
            return;
        }
        let mut inner = self.lock();
        while keys
            .clone()
            .any(|k| inner.keys.get(k).is_some_and(|s| s.sending > 0))
        {
            inner = self.done.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        inner.last += 1;
        let number = inner.last;
        for k in keys {
            if let Some(state) = inner.keys.get_mut(k) {
                state.newest = number;
            }
        }
    }

    /// Whether a write of `key` waits in a queue (or is being sent).
    pub(crate) fn holds(&self, key: &[u8]) -> bool {
        self.any.load(Relaxed) && self.lock().keys.contains_key(key)
    }
}
