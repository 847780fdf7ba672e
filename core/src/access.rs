//! Buffered access tracking. A hit must not cost a write of its own, so hits are kept
//! in memory and reach the file in two steps:
//!
//! 1. Every write transaction first gives each new hit a tick of the file's logical
//!    clock, in the order the hits happened, before the transaction's own sets tick.
//!    That fixes the hit's place in the order exactly, in memory.
//! 2. The ticked hits are written to their rows only when an eviction is about to
//!    choose a victim, when the buffer grows past [`FLUSH_THRESHOLD`] keys, or when the
//!    a handle closes. A read-mostly cache thus writes each hot key once per window,
//!    not once per hit. A get never writes them: the get that fills the buffer starts
//!    a hit writer, a thread of the process that writes them and ends (see
//!    [`AccessLog::record`]); the next write transaction writes them if it comes first.
//!
//! The buffer is shared by all handles of a process on one file, so the order is
//! exact across them; other processes see a process's hits once they are written.

use std::collections::HashMap;

/// How many distinct keys may wait before a hit forces them to be written: at about
/// 100 bytes each (with 16-byte keys), under 2 MiB, whatever the size of the cache.
pub(crate) const FLUSH_THRESHOLD: usize = 16384;

/// How many distinct keys may wait at most: while a hit writer is behind (or cannot
/// write, or there is none: an in-memory cache waits for its next write), hits on keys
/// already waiting are still counted, and a hit on any other key is not recorded (it
/// still counts in `Stats::hits`): its entry keeps the place of its previous access.
/// Under 8 MiB with 16-byte keys.
pub(crate) const MAX_WAITING: usize = 4 * FLUSH_THRESHOLD;

/// The background writer of hits of one process on one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Writer {
    #[default]
    Idle,
    Running,
    /// Its last write failed (a read-only or busy file): none is started again until a
    /// write transaction of a handle has emptied the buffer.
    Failed,
}

/// One key's hits since they were last written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub hits: u64,
    /// When the last hit happened, in this process's order of hits.
    last_seq: u64,
    /// Its place in the file's logical clock, once a write transaction gave it one.
    pub tick: Option<i64>,
}

/// The buffered hits of a process on one file.
#[derive(Default)]
pub(crate) struct Accesses {
    map: HashMap<Vec<u8>, Access>,
    /// Keys whose latest hit has no tick yet (maybe twice, maybe since removed), so
    /// that a write ticks only the new hits, not the whole buffer.
    fresh: Vec<Vec<u8>>,
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
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.map.remove(key);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Access)> {
        self.map.iter()
    }

    /// Gives the hits without a tick a tick from `next`, oldest hit first.
    pub fn tick_fresh(&mut self, mut next: impl FnMut() -> i64) {
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.sort_unstable_by_key(|k| self.map.get(k).map_or(0, |a| a.last_seq));
        for key in fresh {
            if let Some(a) = self.map.get_mut(&key) {
                if a.tick.is_none() {
                    a.tick = Some(next());
                }
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

#[derive(Default)]
pub(crate) struct AccessLog {
    next_seq: u64,
    pending: Accesses,
    /// The process whose hits these are (0: none recorded yet).
    pid: u32,
    writer: Writer,
}

impl AccessLog {
    /// Forgets the hits of another process (the parent of a forked child): each hit is
    /// written once, by the process that buffered it.
    pub fn belong_to(&mut self, pid: u32) {
        if self.pid != pid {
            if self.pid != 0 {
                *self = AccessLog::default();
            }
            self.pid = pid;
        }
    }

    /// Records a hit. Returns true when the caller is to start a hit writer: the buffer
    /// is full, `background` (the file can be written by another connection) and none
    /// runs. Never writes, never waits: past [`MAX_WAITING`] keys, a hit on a key that
    /// is not waiting already is left out.
    pub fn record(&mut self, key: &[u8], background: bool) -> bool {
        self.next_seq += 1;
        let seq = self.next_seq;
        let pending = &mut self.pending;
        let full_up = pending.map.len() >= MAX_WAITING;
        match pending.map.get_mut(key) {
            None if full_up => {}
            Some(a) => {
                a.hits += 1;
                a.last_seq = seq;
                if a.tick.take().is_some() {
                    // A newer hit needs a newer tick.
                    pending.fresh.push(key.to_vec());
                }
            }
            None => {
                pending.map.insert(
                    key.to_vec(),
                    Access {
                        hits: 1,
                        last_seq: seq,
                        tick: None,
                    },
                );
                pending.fresh.push(key.to_vec());
            }
        }
        let start =
            background && self.writer == Writer::Idle && self.pending.map.len() >= FLUSH_THRESHOLD;
        if start {
            self.writer = Writer::Running;
        }
        start
    }

    /// Called by the hit writer after each write (`ok`: it committed). Returns true
    /// when it is to write again: the buffer filled up meanwhile.
    pub fn writer_wrote(&mut self, ok: bool) -> bool {
        if self.writer != Writer::Running {
            return false; // a forked child's copy: the writer is the parent's
        }
        self.writer = match (ok, self.pending.map.len() >= FLUSH_THRESHOLD) {
            (false, _) => Writer::Failed,
            (true, true) => return true,
            (true, false) => Writer::Idle,
        };
        false
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// How many distinct keys wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Takes every buffered hit, for a write transaction.
    pub fn take(&mut self) -> Accesses {
        std::mem::take(&mut self.pending)
    }

    /// Gives back what a write transaction left unwritten (or took and failed to use),
    /// merged with the hits recorded meanwhile.
    pub fn restore(&mut self, accesses: Accesses) {
        if self.writer == Writer::Failed && accesses.is_empty() {
            self.writer = Writer::Idle; // a transaction wrote them: try again when full
        }
        if self.pending.is_empty() {
            self.pending = accesses;
            return;
        }
        let Accesses { map, fresh } = accesses;
        for (key, old) in map {
            match self.pending.map.get_mut(&key) {
                // Newer hits arrived: they carry the order; add the older count.
                Some(newer) => newer.hits += old.hits,
                None => {
                    self.pending.map.insert(key, old);
                }
            }
        }
        self.pending.fresh.extend(fresh);
    }
}
