//! Buffered access tracking. A hit must not cost a write of its own, so hits are kept
//! in memory and reach the file in two steps:
//!
//! 1. Every write transaction first gives each new hit a tick of the file's logical
//!    clock, in the order the hits happened, before the transaction's own sets tick.
//!    That fixes the hit's place in the order exactly, in memory. The hits still in
//!    the readers' shards are not visited for it: the transaction reserves one tick
//!    per hit number issued since the last reservation ([`AccessLog::reserve`]), and
//!    a hit takes the tick of its number when it is merged, by the transaction that
//!    needs it (an eviction, a write of the hits) or a later one.
//! 2. The ticked hits are written to their rows only when an eviction is about to
//!    choose a victim, when the buffer grows past [`FLUSH_THRESHOLD`] keys, or when the
//!    a handle closes. A read-mostly cache thus writes each hot key once per window,
//!    not once per hit. A get never writes them: the get that fills the buffer starts
//!    a hit writer, a thread of the process that writes them and ends (see
//!    [`AccessLog::record`]); the next write transaction writes them if it comes first.
//!
//! The buffer is shared by all handles of a process on one file, so the order is
//! exact across them; other processes see a process's hits once they are written.
//!
//! Readers do not wait for each other: a hit goes to the shard of the thread that
//! made it ([`SHARDS`] of them, each behind its own lock), numbered from one counter
//! of the process, and a write transaction merges the shards by that number (see
//! [`AccessLog::take`]). A key hit from several threads waits in each of their
//! shards, so the buffer counts as full when one shard (with the hits given back) holds
//! [`FLUSH_THRESHOLD`] keys, or all of them half of [`MAX_WAITING`]: readers on more
//! threads of the same keys do not start hit writers that one reader would not.
//!
//! A get never grows a table: regrowing a shard of tens of thousands of keys (a rehash
//! into fresh memory, its pages faulted in) cost the get that did it 1-10 ms of CPU.
//! Each shard's table is made once with room for [`SHARD_ROOM`] keys, more than fill
//! it before a hit writer starts, and a merge swaps it for a spare emptied by the merge
//! before, or for a larger table that the merge makes: past its room, a hit on a key
//! not waiting yet is left out, as past [`MAX_WAITING`].

use crate::sync::{lock, thread_index, Padded};
use hashbrown::hash_map::EntryRef;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many distinct keys may wait before a hit forces them to be written: at about
/// 100 bytes each (with 16-byte keys), under 2 MiB, whatever the size of the cache.
pub(crate) const FLUSH_THRESHOLD: usize = 16384;

/// How many distinct keys may wait at most: while a hit writer is behind (or cannot
/// write, or there is none: an in-memory cache waits for its next write), hits on keys
/// already waiting are still counted, and a hit on any other key is not recorded (it
/// still counts in `Stats::hits`): its entry keeps the place of its previous access.
/// Under 8 MiB of keys with 16-byte keys; the tables that hold them are kept for
/// reuse (a shard's table and its spare, up to [`SHARD_ROOM_MAX`] keys each).
pub(crate) const MAX_WAITING: usize = 4 * FLUSH_THRESHOLD;

/// How many shards the hit buffer has: threads numbered in turn record into distinct
/// ones up to this many readers at a time.
const SHARDS: usize = 16;

/// The keys a shard's first table has room for: at least [`FLUSH_THRESHOLD`], so that
/// a shard is full (and a hit writer started) before its table is. hashbrown rounds it
/// up to 28,672 (a table of 1.6 MiB, its pages in memory as keys land in them).
const SHARD_ROOM: usize = FLUSH_THRESHOLD;

/// The most keys a merge gives a shard's table room for (twice what the last one
/// held): 57,344 (3.2 MiB), under [`MAX_WAITING`].
const SHARD_ROOM_MAX: usize = MAX_WAITING / 2;

/// How many reservations of ticks ([`AccessLog::reserve`]) a write keeps before it
/// merges the shards, which lets them go: every write that finds hits in the shards
/// reserves one, and a write that merges nothing (a set of another key, or of the key
/// just read) kept each, 24 bytes per write, without bound. A merge per 1,024 writes at
/// most: its cost (that of the hits waiting) is spread over them.
pub(crate) const MAX_RESERVATIONS: usize = 1024;

/// The state of the background writer of hits of one process on one file.
/// Idle: none runs.
const IDLE: u8 = 0;
const RUNNING: u8 = 1;
/// Its last write failed (a read-only or busy file): none is started again until a
/// write transaction of a handle has emptied the buffer, or [`RETRY_AFTER`] more hits
/// found the buffer full (a process that only reads, once the other process that held
/// the write lock let it go).
const FAILED: u8 = 2;

/// How many hits that find the buffer full while the last hit writer failed start
/// another: a thread and a connection per 4,096 hits where the file stays locked or
/// read-only, under a microsecond a hit.
const RETRY_AFTER: u32 = 4096;

/// One key's hits since they were last written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub hits: u64,
    /// When the last hit happened, in this process's order of hits.
    last_seq: u64,
    /// Its place in the file's logical clock, once a write transaction gave it one.
    pub tick: Option<i64>,
    /// The entry the hits were made on: its `created` tick ([`UNKNOWN_ENTRY`]: the
    /// entry the key has when they are written).
    pub created: i64,
}

/// The `created` of hits made on whatever entry the key has when they are written (a
/// hit found inside a write transaction, which no other process can replace meanwhile).
pub(crate) const UNKNOWN_ENTRY: i64 = i64::MIN;

/// How two records of hits on one key, on the entries created at `a` and `b`, combine:
/// [`Same`](Entries::Same) entry (or one unknown), or the hits of the older entry are
/// dropped. A key set again by another process between two hits of this one has a new
/// entry, which starts with no hits ("its creation order and hit count start over"):
/// the hits made on the old one must not count for it, nor place it in the order.
fn entries(a: i64, b: i64) -> Entries {
    match (a, b) {
        _ if a == b || a == UNKNOWN_ENTRY || b == UNKNOWN_ENTRY => Entries::Same(a.max(b)),
        _ if a > b => Entries::FirstNewer,
        _ => Entries::SecondNewer,
    }
}

enum Entries {
    /// One entry, created at this tick (or unknown).
    Same(i64),
    FirstNewer,
    SecondNewer,
}

/// The buffered hits of a process on one file. A write merges every shard's keys into
/// it, so it hashes with hashbrown's default (foldhash), as the shards do: SipHash was
/// a tenth of the hit writer's CPU.
#[derive(Default)]
pub(crate) struct Accesses {
    map: hashbrown::HashMap<Vec<u8>, Access>,
    /// Keys whose latest hit has no tick yet (maybe twice, maybe since removed), so
    /// that a write ticks only the new hits, not the whole buffer.
    fresh: Vec<Vec<u8>>,
    /// The hits a transaction removed (written to their rows, or forgotten with their
    /// entry): gone once it commits, back in the buffer if it rolls back, so that a
    /// write that fails (a full disk after an eviction wrote hits) loses none.
    removed: Vec<(Vec<u8>, Access)>,
}

impl Accesses {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.fresh.clear();
        self.removed.clear();
    }

    /// Removes a key's hits, until the transaction that holds them commits (see
    /// [`Accesses::removed`]).
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.map.remove_entry(key) {
            self.removed.push(entry);
        }
    }

    /// Removes every key's hits, as [`Accesses::remove`].
    pub fn remove_all(&mut self) {
        self.removed.extend(self.map.drain());
        self.fresh.clear();
    }

    /// The transaction that held them committed: what it removed is gone.
    pub fn committed(&mut self) {
        self.removed.clear();
    }

    /// The transaction that held them rolled back: what it removed is back (hits that
    /// came in meanwhile under the same key are kept with them).
    pub fn rolled_back(&mut self) {
        for (key, old) in std::mem::take(&mut self.removed) {
            match self.map.get_mut(&key) {
                Some(a) => a.hits += old.hits,
                None => {
                    if old.tick.is_none() {
                        self.fresh.push(key.clone());
                    }
                    self.map.insert(key, old);
                }
            }
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Access> {
        self.map.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Access)> {
        self.map.iter()
    }

    /// Gives the hits without a tick a tick from `next`, oldest hit first.
    pub fn tick_fresh(&mut self, mut next: impl FnMut() -> i64) {
        // Each key looked up once, not once per comparison of the sort.
        let mut fresh: Vec<(u64, Vec<u8>)> = std::mem::take(&mut self.fresh)
            .into_iter()
            .filter_map(|k| Some((self.map.get(&k)?.last_seq, k)))
            .collect();
        fresh.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, key) in fresh {
            if let Some(a) = self.map.get_mut(&key) {
                if a.tick.is_none() {
                    a.tick = Some(next());
                }
            }
        }
    }

    /// Adds a key's `hits`, the latest made at `last_seq`, on the entry created at
    /// `created`, to what waits already; `tick`: the tick a write reserved for that
    /// hit, if one did.
    fn merge(&mut self, key: Vec<u8>, hits: u64, last_seq: u64, created: i64, tick: Option<i64>) {
        match self.map.get_mut(&key) {
            Some(a) => {
                match entries(a.created, created) {
                    Entries::Same(c) => a.created = c,
                    // These hits were made on an entry older than those waiting.
                    Entries::FirstNewer => return,
                    // Those waiting were: they go.
                    Entries::SecondNewer => {
                        a.hits = 0;
                        a.created = created;
                    }
                }
                a.hits += hits;
                if last_seq > a.last_seq {
                    a.last_seq = last_seq;
                    // A newer hit needs a newer tick: its reserved one, or one from the
                    // next `tick_fresh` (a key without a tick is in `fresh` already).
                    match tick {
                        Some(t) => a.tick = Some(t),
                        None => {
                            if a.tick.take().is_some() {
                                self.fresh.push(key);
                            }
                        }
                    }
                }
            }
            None => {
                if tick.is_none() {
                    self.fresh.push(key.clone());
                }
                self.map.insert(
                    key,
                    Access {
                        hits,
                        last_seq,
                        tick,
                        created,
                    },
                );
            }
        }
    }

    /// Forgets the ticks above `clock` (given by a transaction that rolled back).
    pub fn untick_after(&mut self, clock: i64) {
        for (key, a) in &mut self.map {
            if a.tick.is_some_and(|t| t > clock) {
                a.tick = None;
                self.fresh.push(key.clone());
            }
        }
    }
}

/// The hits one shard holds: per key, how many and the number of the latest. Every hit
/// looks its key up here, so the table is hashbrown's with its fast default hasher
/// (foldhash, seeded per process), whose `entry_ref` hashes the key once and copies it
/// only when it is new; std's SipHash and `get_mut` then `insert` cost twice as much.
type Table = hashbrown::HashMap<Vec<u8>, Hits>;

/// A key's hits in a shard: how many, the number of the latest, and the `created` of
/// the entry they were made on (see [`Access::created`]).
#[derive(Clone, Copy)]
struct Hits {
    hits: u64,
    seq: u64,
    created: i64,
}

impl Hits {
    /// `self` and `later` (hits numbered after them, or put back) together.
    fn and(self, later: Hits) -> Hits {
        match entries(self.created, later.created) {
            Entries::Same(created) => Hits {
                hits: self.hits + later.hits,
                seq: self.seq.max(later.seq),
                created,
            },
            Entries::FirstNewer => self,
            Entries::SecondNewer => later,
        }
    }
}

/// One shard: the hits waiting, and the table that takes their place at the next merge.
#[derive(Default)]
struct Shard {
    hits: Table,
    /// Empty, with the room of the table it was (its pages already in memory): the
    /// readers of this shard never wait for an allocation or a page fault of a merge.
    spare: Table,
}

#[derive(Default)]
pub(crate) struct AccessLog {
    /// Numbers the hits of this process, in the order they happened; taken while the
    /// hit's shard is locked (see [`AccessLog::take`] for why).
    next_seq: AtomicU64,
    shards: [Padded<Mutex<Shard>>; SHARDS],
    /// Keys waiting in the shards (a key hit from two threads counts twice).
    in_shards: AtomicUsize,
    /// Hits merged from the shards that no transaction holds now: those given back by
    /// the last one (not written, or not ticked yet).
    merged: Mutex<Accesses>,
    /// How many keys `merged` holds.
    in_merged: AtomicUsize,
    /// The ticks write transactions reserved for the hits still in the shards.
    reserved: Mutex<Reserved>,
    /// The process whose hits these are (0: none recorded yet).
    pid: AtomicU32,
    writer: AtomicU8,
    /// Hits that found the buffer full since the last hit writer failed.
    full_since_failed: AtomicU32,
}

/// The ticks reserved for hits numbered `lo..=hi`: the hit numbered `n` has tick
/// `base + 1 + (n - lo)`, all of them after every tick the file had when they were
/// reserved and before the reserving transaction's own ticks.
#[derive(Clone, Copy, Debug)]
struct Epoch {
    lo: u64,
    hi: u64,
    base: i64,
}

/// The reservations of the hits not merged yet, oldest first: each starts where the one
/// before ended.
#[derive(Default, Debug)]
struct Reserved {
    epochs: Vec<Epoch>,
    /// The highest hit number with a tick reserved, or merged by a transaction (which
    /// ticks it itself).
    upto: u64,
}

impl Reserved {
    /// The tick reserved for the hit numbered `seq`, if any.
    fn tick_of(&self, seq: u64) -> Option<i64> {
        let e = self
            .epochs
            .get(self.epochs.partition_point(|e| e.hi < seq))?;
        (e.lo <= seq).then(|| e.base + 1 + (seq - e.lo) as i64)
    }
}

impl AccessLog {
    /// Forgets the hits of another process (the parent of a forked child): each hit is
    /// written once, by the process that buffered it.
    pub fn belong_to(&self, pid: u32) {
        if self.pid.load(Ordering::Relaxed) == pid {
            return;
        }
        let mut merged = lock(&self.merged);
        let was = self.pid.load(Ordering::Relaxed);
        if was == pid {
            return; // another thread got here first
        }
        if was != 0 {
            merged.clear();
            *lock(&self.reserved) = Reserved::default();
            for shard in &self.shards {
                lock(&shard.0).hits.clear();
            }
            self.in_shards.store(0, Ordering::Relaxed);
            self.in_merged.store(0, Ordering::Relaxed);
            self.writer.store(IDLE, Ordering::Relaxed);
        }
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// How many keys wait (counted once per shard they wait in).
    fn waiting(&self) -> usize {
        self.in_shards.load(Ordering::Relaxed) + self.in_merged.load(Ordering::Relaxed)
    }

    /// Records a hit. Returns true when the caller is to start a hit writer: the buffer
    /// is full, `background` (the file can be written by another connection) and none
    /// runs. Never writes, never waits for another reader, never grows a table (but an
    /// in-memory cache's, which no hit writer empties): past [`MAX_WAITING`] keys, or
    /// its shard's room, a hit on a key that is not waiting in this thread's shard
    /// already is left out.
    pub fn record(&self, key: &[u8], created: i64, background: bool) -> bool {
        let own = {
            let mut shard = lock(&self.shards[thread_index() % SHARDS].0);
            let hits = &mut shard.hits;
            if hits.capacity() == 0 {
                // This shard's first hit: its table is made once, here.
                hits.reserve(SHARD_ROOM);
            }
            let room = hits.len() < hits.capacity();
            // Numbered under the shard's lock: a merge that has locked the shard sees
            // every hit numbered before it.
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
            match hits.entry_ref(key) {
                EntryRef::Occupied(mut a) => {
                    let a = a.get_mut();
                    *a = a.and(Hits {
                        hits: 1,
                        seq,
                        created,
                    });
                }
                // Without room, an insert would rehash the table: where a hit writer
                // can empty the shards (`background`), the next merge gives this shard a
                // larger one instead. An in-memory cache has none: only its next write
                // takes the hits, so a get grows the table, up to MAX_WAITING keys.
                EntryRef::Vacant(_) if (!room && background) || self.waiting() >= MAX_WAITING => {}
                EntryRef::Vacant(a) => {
                    a.insert(Hits {
                        hits: 1,
                        seq,
                        created,
                    });
                    self.in_shards.fetch_add(1, Ordering::Relaxed);
                }
            }
            hits.len()
        };
        background && self.full(own) && self.start_writer()
    }

    /// Whether the caller is to start a hit writer: none runs, and none failed, or
    /// [`RETRY_AFTER`] hits found the buffer full since one did.
    fn start_writer(&self) -> bool {
        let (relaxed, writer) = (Ordering::Relaxed, &self.writer);
        match writer.compare_exchange(IDLE, RUNNING, relaxed, relaxed) {
            Ok(_) => true,
            Err(FAILED) if self.full_since_failed.fetch_add(1, relaxed) + 1 >= RETRY_AFTER => {
                self.full_since_failed.store(0, relaxed);
                writer
                    .compare_exchange(FAILED, RUNNING, relaxed, relaxed)
                    .is_ok()
            }
            Err(_) => false,
        }
    }

    /// Whether the waiting hits are to be written, `own` keys waiting in the caller's
    /// shard: not by the sum of all shards alone, which counts a key once per thread
    /// that hit it.
    fn full(&self, own: usize) -> bool {
        own + self.in_merged.load(Ordering::Relaxed) >= FLUSH_THRESHOLD
            || self.waiting() >= MAX_WAITING / 2
    }

    /// Called by the hit writer after each write (`ok`: it committed). Returns true
    /// when it is to write again: the buffer filled up meanwhile.
    pub fn writer_wrote(&self, ok: bool) -> bool {
        if self.writer.load(Ordering::Relaxed) != RUNNING {
            return false; // a forked child's copy: the writer is the parent's
        }
        // Again only if the buffer is full by any count; else the next hit that finds
        // its shard full starts a writer.
        let next = match (ok, self.waiting() >= MAX_WAITING / 2) {
            (false, _) => {
                self.full_since_failed.store(0, Ordering::Relaxed);
                FAILED
            }
            (true, true) => return true,
            (true, false) => IDLE,
        };
        self.writer.store(next, Ordering::Relaxed);
        false
    }

    pub fn is_empty(&self) -> bool {
        self.waiting() == 0
    }

    /// How many keys wait in the shards (a key hit from two threads counts twice).
    pub fn in_shards(&self) -> usize {
        self.in_shards.load(Ordering::Relaxed)
    }

    /// Whether a hit writer runs (it writes the hits that wait, a batch at a time).
    pub fn writer_running(&self) -> bool {
        self.writer.load(Ordering::Relaxed) == RUNNING
    }

    /// Whether the last hit writer failed and none was started since.
    #[cfg(test)]
    pub fn writer_failed(&self) -> bool {
        self.writer.load(Ordering::Relaxed) == FAILED
    }

    /// How many distinct keys wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting()
    }

    /// How many keys the calling thread's shard has room for, and its shard's number.
    #[cfg(test)]
    pub fn room_of_this_thread(&self) -> (usize, usize) {
        let shard = thread_index() % SHARDS;
        (lock(&self.shards[shard].0).hits.capacity(), shard)
    }

    /// Takes the hits merged from the shards already (by an earlier transaction, which
    /// gave them back), for a write transaction: no shard is visited. With
    /// [`AccessLog::reserve`], the hits in the shards keep their place without being
    /// merged, and [`AccessLog::merge_shards_into`] merges them, by the number of each
    /// key's latest hit, when the transaction needs them.
    pub fn take_merged(&self) -> Accesses {
        let taken = std::mem::take(&mut *lock(&self.merged));
        self.in_merged.store(0, Ordering::Relaxed);
        taken
    }

    /// Reserves ticks after `clock` for the hits numbered since the last reservation
    /// (or merge), in the order of their numbers, for a write transaction that holds
    /// this process's turn to write the file; returns how many, by which the caller
    /// advances its clock, and the highest number they cover (what
    /// `merge_shards_into` may take in this transaction). A hit numbered later waits
    /// for the next write. One tick per number: a key hit twice leaves a tick unused,
    /// which costs nothing (ticks only order rows; the clock stays far below 2^62).
    /// The third value: the reservations kept reach [`MAX_RESERVATIONS`], so the
    /// caller is to merge the shards now.
    pub fn reserve(&self, clock: i64) -> (i64, u64, bool) {
        let mut reserved = lock(&self.reserved);
        let upto = self.next_seq.load(Ordering::Relaxed);
        if upto <= reserved.upto {
            return (0, reserved.upto, false);
        }
        let lo = reserved.upto + 1;
        reserved.epochs.push(Epoch {
            lo,
            hi: upto,
            base: clock,
        });
        reserved.upto = upto;
        let crowded = reserved.epochs.len() >= MAX_RESERVATIONS;
        ((upto - lo + 1) as i64, upto, crowded)
    }

    /// How many reservations are kept.
    #[cfg(test)]
    pub fn reservations(&self) -> usize {
        lock(&self.reserved).epochs.len()
    }

    /// Forgets the reservations made after `clock` (by a transaction that rolled back):
    /// their hits are reserved again, or ticked, by the next write.
    pub fn unreserve_after(&self, clock: i64) {
        let mut reserved = lock(&self.reserved);
        while let Some(e) = reserved.epochs.last().copied() {
            if e.base < clock {
                break;
            }
            reserved.epochs.pop();
            reserved.upto = e.lo - 1;
        }
    }

    /// Merges the hits of the shards numbered up to `upto` into `taken`, each with the
    /// tick reserved for it if one was, else to be ticked by `tick_fresh`. Only hits
    /// numbered before the transaction reserved are taken, so that a hit made after
    /// another (one thread, or threads that waited for each other) is never ticked
    /// before it; later ones wait for the next write.
    pub fn merge_shards_into(&self, taken: &mut Accesses, upto: u64) {
        if self.in_shards.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut reserved = lock(&self.reserved);
        for shard in &self.shards {
            let (held, room, spare) = {
                let mut shard = lock(&shard.0);
                if shard.hits.is_empty() {
                    continue;
                }
                let spare = std::mem::take(&mut shard.spare);
                (shard.hits.len(), shard.hits.capacity(), spare)
            };
            // Emptied at once and merged with its lock released: readers of this
            // shard wait for a swap, not for the merge. The table swapped in has the
            // room of the one taken out, or for twice the keys it held (as many again
            // may come while these are written); a larger one is made here, before the
            // lock is taken, never by a get.
            let wanted = room.max((2 * held).min(SHARD_ROOM_MAX));
            let empty = if spare.capacity() >= wanted {
                spare
            } else {
                Table::with_capacity(wanted)
            };
            let mut drained = std::mem::replace(&mut lock(&shard.0).hits, empty);
            self.in_shards.fetch_sub(drained.len(), Ordering::Relaxed);
            let mut later = Vec::new();
            for (key, h) in drained.drain() {
                if h.seq > upto {
                    later.push((key, h));
                } else {
                    taken.merge(key, h.hits, h.seq, h.created, reserved.tick_of(h.seq));
                }
            }
            let mut shard = lock(&shard.0);
            if !later.is_empty() {
                self.put_back(&mut shard.hits, later);
            }
            // Emptied, its room and its pages kept: the next merge swaps it in.
            shard.spare = drained;
        }
        // No shard holds a hit numbered up to `upto` now: their reservations are used.
        reserved.epochs.retain(|e| e.hi > upto);
        reserved.upto = reserved.upto.max(upto);
    }

    /// Gives a shard back the hits a merge found numbered after it began.
    fn put_back(&self, shard: &mut Table, later: Vec<(Vec<u8>, Hits)>) {
        for (key, h) in later {
            match shard.get_mut(&key) {
                Some(a) => *a = a.and(h),
                None => {
                    shard.insert(key, h);
                    self.in_shards.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Gives back what a write transaction left unwritten (or took and failed to use),
    /// merged with any given back meanwhile.
    pub fn restore(&self, accesses: Accesses) {
        let mut merged = lock(&self.merged);
        if accesses.is_empty() && self.writer.load(Ordering::Relaxed) == FAILED {
            // A transaction wrote them: try again when full.
            self.writer.store(IDLE, Ordering::Relaxed);
        }
        if merged.is_empty() {
            *merged = accesses;
        } else {
            let Accesses { map, fresh, .. } = accesses;
            for (key, old) in map {
                match merged.map.get_mut(&key) {
                    Some(newer) => match entries(old.created, newer.created) {
                        // Hits made on the older entry go (see `entries`).
                        Entries::FirstNewer => *newer = old,
                        Entries::SecondNewer => {}
                        Entries::Same(created) if newer.last_seq >= old.last_seq => {
                            newer.hits += old.hits;
                            newer.created = created;
                        }
                        Entries::Same(created) => {
                            let hits = newer.hits;
                            *newer = old;
                            newer.hits += hits;
                            newer.created = created;
                        }
                    },
                    None => {
                        merged.map.insert(key, old);
                    }
                }
            }
            merged.fresh.extend(fresh);
        }
        self.in_merged.store(merged.len(), Ordering::Relaxed);
    }
}
