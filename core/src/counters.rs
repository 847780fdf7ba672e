//! The file's counters: its logical clock, the `count` and `total_size` of its
//! entries, and the lifetime counters (lifetime.rs). Every write transaction reads them
//! at its start and writes them at its end (txn.rs), so they are exact across
//! processes and crashes.
//!
//! They live in the newest entry row (schema 4), which every insert writes anyway: an
//! insert carries them, and a write that inserts nothing updates that row, on the page
//! the next insert dirties too. Kept in a row of their own, they cost every set a third
//! page (3.14 WAL pages per new-key set against raw SQLite's 2.12). `state` holds them
//! while the table is empty. The older rows keep the counters of their time, unread.

use crate::error::{Result, SqliteContext};
use crate::table;
use rusqlite::{Connection, Row};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub clock: i64,
    pub count: i64,
    pub total_size: i64,
    /// Hits, misses, evictions and expirations.
    pub lifetime: [i64; 4],
}

impl Counters {
    /// The seven counter columns starting at `at`, in the order of `table::LOAD`.
    pub fn from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Counters {
            clock: r.get(at)?,
            count: r.get(at + 1)?,
            total_size: r.get(at + 2)?,
            lifetime: [
                r.get(at + 3)?,
                r.get(at + 4)?,
                r.get(at + 5)?,
                r.get(at + 6)?,
            ],
        })
    }

    /// In the order of the statements' parameters.
    pub fn values(&self) -> [i64; 7] {
        let [hits, misses, evictions, expirations] = self.lifetime;
        [
            self.clock,
            self.count,
            self.total_size,
            hits,
            misses,
            evictions,
            expirations,
        ]
    }
}

/// Adds `n` to a lifetime counter, which stops at the largest integer SQLite holds.
pub(crate) fn add(counter: i64, n: u64) -> i64 {
    counter.saturating_add(n.min(i64::MAX as u64) as i64)
}

/// The counters, as of the caller's read.
pub(crate) fn read(conn: &Connection) -> Result<Counters> {
    conn.prepare_cached(table::LOAD)
        .and_then(|mut s| s.query_row([], |r| Counters::from_row(r, 0)))
        .ctx("reading the cache counters")
}

/// Writes `c` where the counters live, inside the caller's write transaction: into the
/// newest entry row, or `state` when there is none. The one writer of the counters.
pub(crate) fn write(conn: &Connection, c: &Counters) -> Result<()> {
    let values = c.values();
    let in_row = conn
        .prepare_cached(table::WRITE_NEWEST_COUNTERS)
        .and_then(|mut s| s.execute(values))
        .ctx("writing the cache counters")?;
    if in_row == 0 {
        conn.prepare_cached(table::WRITE_STATE_COUNTERS)
            .and_then(|mut s| s.execute(values))
            .ctx("writing the cache counters")?;
    }
    Ok(())
}
