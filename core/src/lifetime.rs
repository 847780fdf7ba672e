//! Lifetime counters: hits, misses, evictions and expirations since the file was
//! created (or since the last zero), kept in the file by every handle of every
//! process, so that a cache's hit ratio can be read over its whole life.
//!
//! A get must not cost a write, so hits and misses wait in memory, shared by the
//! process's handles on the file, and go into the file with the next write
//! transaction (a set, the buffered hits' flush, or a handle's close).
//! Evictions and expirations are added by the transaction that makes them.

use crate::counters;
use crate::error::{Result, SqliteContext};
use crate::sync::lock;
use crate::table;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

/// The counters as the file holds them, plus this process's not yet written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifetimeStats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
    /// Entries evicted for size.
    pub evictions: u64,
    /// Expired entries removed.
    pub expirations: u64,
    /// When counting began: the file's creation, its upgrade to a schema with these
    /// counters, or the last zero (milliseconds since the Unix epoch).
    pub since_ms: i64,
}

impl LifetimeStats {
    /// Hits over lookups, or `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// Hits and misses of this process on one file, not yet in the file. Counted with
/// atomics: every get counts one, and threads reading through one handle must not
/// queue on a lock for it.
#[derive(Default)]
pub(crate) struct Pending {
    /// The process that counted them (0: none yet): a forked child does not write its
    /// parent's, and starts from zero.
    pid: AtomicU32,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Hits counted (here or already in the file) that proved misses: a reader's
    /// value found damaged at its end ([`Pending::hit_proved_a_miss`]). Taken back
    /// from the hits when written.
    unhits: AtomicU64,
    /// Hits, misses and unhits a write took and has not committed yet (or given
    /// back): still this process's unwritten ones for [`Pending::with_unwritten`],
    /// which must not lose them while the write waits for another process's lock.
    flying: [AtomicU64; 3],
    /// Odd while counts move between the pending ones, the flying ones and the file
    /// (a take, a commit, a give-back): a reader that sees it change reads again, so
    /// it never counts a hit twice or not at all.
    moving: AtomicU64,
    /// Held while a forked child zeroes what it inherited (rare: once per process).
    adopting: Mutex<()>,
}

/// A move of counts (see [`Pending::moving`]): `moving` is odd from its start to its
/// drop, a panic included.
struct Moving<'a>(&'a AtomicU64);

impl<'a> Moving<'a> {
    fn start(moving: &'a AtomicU64) -> Moving<'a> {
        moving.fetch_add(1, SeqCst);
        Moving(moving)
    }
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

impl Pending {
    /// The counters (hits, misses, hits that proved misses), once they are this
    /// process's.
    fn counts(&self) -> (&AtomicU64, &AtomicU64, &AtomicU64) {
        self.counts_in(std::process::id())
    }

    /// `counts` in process `pid` (this one).
    fn counts_in(&self, pid: u32) -> (&AtomicU64, &AtomicU64, &AtomicU64) {
        if self.pid.load(SeqCst) != pid {
            let _adopting = lock(&self.adopting);
            if self.pid.load(SeqCst) != pid {
                // Zeroed before the pid says they are ours, so no hit of ours is lost.
                self.hits.store(0, SeqCst);
                self.misses.store(0, SeqCst);
                self.unhits.store(0, SeqCst);
                // The parent's writes under way are the parent's; one that was
                // moving counts when the child was forked leaves no move open here.
                for n in &self.flying {
                    n.store(0, SeqCst);
                }
                self.moving.store(0, SeqCst);
                self.pid.store(pid, SeqCst);
            }
        }
        (&self.hits, &self.misses, &self.unhits)
    }

    /// Counts a hit in process `pid` (this one).
    pub fn hit(&self, pid: u32) {
        self.counts_in(pid).0.fetch_add(1, Relaxed);
    }

    /// Counts a miss in process `pid` (this one).
    pub fn miss(&self, pid: u32) {
        self.counts_in(pid).1.fetch_add(1, Relaxed);
    }

    /// Turns a hit counted in this process (written to the file or not) into a miss:
    /// a reader's value proved damaged at its end, so its look-up found no live entry.
    pub fn hit_proved_a_miss(&self) {
        let (_, misses, unhits) = self.counts();
        unhits.fetch_add(1, Relaxed);
        misses.fetch_add(1, Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        let (hits, misses, unhits) = self.counts();
        hits.load(Relaxed) == 0 && misses.load(Relaxed) == 0 && unhits.load(Relaxed) == 0
    }

    /// The file's counters as `read` gives them, with this process's hits and misses
    /// not yet written: those waiting and those a write took and has not committed.
    /// Read again whenever counts moved meanwhile (a write's take or commit).
    pub fn with_unwritten(
        &self,
        mut read: impl FnMut() -> Result<LifetimeStats>,
    ) -> Result<LifetimeStats> {
        let (hits, misses, unhits) = self.counts();
        loop {
            let before = self.moving.load(SeqCst);
            if before % 2 == 1 {
                // A take or give-back is a few atomics, a commit a few milliseconds.
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            let mut stats = read()?;
            let [f_hits, f_misses, f_unhits] = self.flying.each_ref().map(|n| n.load(SeqCst));
            let all_hits = stats.hits + hits.load(SeqCst) + f_hits;
            stats.hits = all_hits.saturating_sub(unhits.load(SeqCst) + f_unhits);
            stats.misses += misses.load(SeqCst) + f_misses;
            if self.moving.load(SeqCst) == before {
                return Ok(stats);
            }
        }
    }

    /// Takes them for a write transaction in process `pid` (this one): given back
    /// unless it commits. Until then they are flying, still counted as unwritten.
    pub fn take_in(&self, pid: u32) -> Taken<'_> {
        let (hits, misses, unhits) = self.counts_in(pid);
        let _moving = Moving::start(&self.moving);
        let taken = [hits, misses, unhits].map(|n| n.swap(0, SeqCst));
        for (f, n) in self.flying.iter().zip(taken) {
            f.fetch_add(n, SeqCst);
        }
        Taken {
            pending: self,
            hits: taken[0],
            misses: taken[1],
            unhits: taken[2],
            committed: false,
        }
    }
}

/// Hits and misses a write transaction took; back to the pending ones if it fails.
pub(crate) struct Taken<'a> {
    pending: &'a Pending,
    hits: u64,
    misses: u64,
    unhits: u64,
    committed: bool,
}

impl Taken<'_> {
    /// The hits and misses, which the transaction adds to the file's counters (txn.rs)
    /// with its evictions and expirations, and the hits that proved misses, which it
    /// takes back from the file's hits.
    pub fn lookups(&self) -> [u64; 3] {
        [self.hits, self.misses, self.unhits]
    }

    /// Runs `commit` (the transaction's COMMIT) as one move with the landing of the
    /// counts it wrote: no reader sees them both in the file and still flying.
    pub fn commit<T>(&mut self, commit: impl FnOnce() -> Result<T>) -> Result<T> {
        let _moving = Moving::start(&self.pending.moving);
        let done = commit()?;
        self.land();
        self.committed = true;
        Ok(done)
    }

    /// No longer flying.
    fn land(&self) {
        let taken = [self.hits, self.misses, self.unhits];
        for (f, n) in self.pending.flying.iter().zip(taken) {
            // Saturating: a forked child zeroed what it inherited.
            let _ = f.fetch_update(SeqCst, SeqCst, |f| Some(f.saturating_sub(n)));
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _moving = Moving::start(&self.pending.moving);
            let (hits, misses, unhits) = self.pending.counts();
            hits.fetch_add(self.hits, Relaxed);
            misses.fetch_add(self.misses, Relaxed);
            unhits.fetch_add(self.unhits, Relaxed);
            self.land();
        }
    }
}

/// Counting began at the earlier of the file's time and `from`'s (an import, which
/// adds `from`'s counts through its transaction: `Txn::merge_lifetime`).
pub(crate) fn merge_since(conn: &Connection, from: &LifetimeStats) -> Result<()> {
    conn.prepare_cached(
        "UPDATE state SET stats_since = min(coalesce(stats_since, ?1), ?1) WHERE id = 0",
    )
    .and_then(|mut s| s.execute([from.since_ms]))
    .ctx("merging the lifetime counters")?;
    Ok(())
}

/// The file's counters, as of the caller's read; [`counters::damaged`] if one is not a non-negative integer (check with repair
/// zeroes it), never a made-up figure.
pub(crate) fn read(conn: &Connection) -> Result<LifetimeStats> {
    let mut damaged = false;
    let stats = conn
        .prepare_cached(table::LIFETIME)
        .and_then(|mut s| {
            s.query_row([], |r| {
                let mut n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Integer(v) if v >= 0 => v as u64,
                        _ => {
                            damaged = true;
                            0
                        }
                    })
                };
                Ok(LifetimeStats {
                    hits: n(0)?,
                    misses: n(1)?,
                    evictions: n(2)?,
                    expirations: n(3)?,
                    // Unknown (0) if not an integer: a time, not a count.
                    since_ms: match r.get_ref(4)? {
                        ValueRef::Integer(t) => t,
                        _ => 0,
                    },
                })
            })
            .optional()
        })
        .ctx("reading the lifetime counters")?;
    // No `state` row (removed behind BackLite's back): damaged counters too.
    match stats {
        Some(stats) if !damaged => Ok(stats),
        _ => Err(counters::damaged()),
    }
}

/// Sets the file's counters to zero, counting again from `now` (read once the file is
/// locked, not before the wait for the lock), and drops `pending` (this process's
/// unwritten hits and misses), in a transaction of its own on `conn`: a write's would
/// add what it took before it.
pub(crate) fn zero(conn: &Connection, now: impl FnOnce() -> i64, pending: &Pending) -> Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .ctx("locking the file to zero its counters")?;
    let now = now();
    let mut zeroed = counters::read(&tx)?;
    zeroed.lifetime = [0; 4];
    counters::write(&tx, &zeroed)?;
    tx.prepare_cached("UPDATE state SET stats_since = ?1 WHERE id = 0")
        .and_then(|mut s| s.execute([now]))
        .ctx("zeroing the lifetime counters")?;
    let mut discarded = pending.take_in(std::process::id());
    discarded.commit(|| tx.commit().ctx("zeroing the lifetime counters"))?;
    Ok(())
}
