//! The file's counters: its logical clock, the `count` and `total_size` of its
//! entries, and the lifetime counters (lifetime.rs). Every write transaction reads them
//! at its start (or takes them from what its connection's own last commit left, while
//! SQLite's data version shows no other commit since: [`Known`]) and writes them at its
//! end (txn.rs), so they are exact across processes and crashes.
//!
//! They live in the newest entry row (schema 4), which every insert writes anyway: an
//! insert carries them, and a write that inserts nothing updates that row, on the page
//! the next insert dirties too. Kept in a row of their own, they cost every set a third
//! page (3.14 WAL pages per new-key set against raw SQLite's 2.12). `state` holds them
//! while the table is empty. The older rows keep the counters of their time, unread.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::table;
use rusqlite::types::ValueRef;
use rusqlite::{
    Connection, FileControl, OptionalExtension, Row, TransactionBehavior, DEFAULT_NAME,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub clock: i64,
    pub count: i64,
    pub total_size: i64,
    /// Hits, misses, evictions and expirations.
    pub lifetime: [i64; 4],
}

/// The seven counters as stored, in the order of `table::LOAD`: each `None` where it
/// is not a non-negative integer (a damaged file).
type Stored = [Option<i64>; 7];

impl Counters {
    /// The seven counter columns starting at `at`, in the order of `table::LOAD`;
    /// `None` if one is damaged (see [`damaged`]).
    pub fn from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Option<Self>> {
        Ok(Self::from_stored(stored(r, at)?))
    }

    fn from_stored(s: Stored) -> Option<Self> {
        let [clock, count, total_size, hits, misses, evictions, expirations] = s;
        Some(Counters {
            clock: clock?,
            count: count?,
            total_size: total_size?,
            lifetime: [hits?, misses?, evictions?, expirations?],
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

/// What a connection knows of the file after its own last commit: the counters as it
/// wrote them, and a bound no deadline in the file is below (`None`: none has one). A
/// write that finds the connection's data version unchanged since (no other
/// connection committed, nor this one outside that write) takes them from here instead
/// of reading them: 5.6k of a new-key set's 42.5k instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    pub version: u32,
    pub counters: Counters,
    pub earliest_deadline: Option<i64>,
}

/// The data version of `conn`'s main database: it changes with every commit of this
/// connection and whenever it finds that another connection (of any process) committed,
/// which SQLite learns at the start of each transaction (as it does to keep its own
/// page cache). A plain call, not a statement: `PRAGMA data_version` ignores the
/// connection's own commits.
pub(crate) fn data_version(conn: &Connection) -> Result<u32> {
    let mut version = 0;
    conn.file_control(DEFAULT_NAME, FileControl::DataVersion(&mut version))
        .ctx("reading the data version")?;
    Ok(version)
}

/// Adds `n` to a lifetime counter, which stops at the largest integer SQLite holds.
pub(crate) fn add(counter: i64, n: u64) -> i64 {
    counter.saturating_add(n.min(i64::MAX as u64) as i64)
}

/// The bound of a sound clock, count or total size: no cache reaches 2^62 ticks,
/// entries or bytes, and below it a write's additions cannot overflow. (The lifetime
/// counters saturate instead: any non-negative one is sound.)
pub(crate) const SOUND_BELOW: i64 = 1 << 62;
// table::HIGHEST_TICK spells it out.
const _: () = assert!(SOUND_BELOW == 4_611_686_018_427_387_904);

/// A clock, count or total size as stored; `None` if damaged.
pub(crate) fn sound_value(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(n) if (0..SOUND_BELOW).contains(&n) => Some(n),
        _ => None,
    }
}

/// The seven counter columns starting at `at`, as stored.
fn stored(r: &Row<'_>, at: usize) -> rusqlite::Result<Stored> {
    let mut s = [None; 7];
    for (i, v) in s.iter_mut().enumerate() {
        let stored = r.get_ref(at + i)?;
        *v = match stored {
            ValueRef::Integer(n) if i >= 3 && n >= 0 => Some(n),
            _ if i < 3 => sound_value(stored),
            _ => None,
        };
    }
    Ok(s)
}

/// The error of every write, and of stats, while the counters are damaged: a write
/// writes nothing, so nothing is lost, and a check with repair recounts them.
pub(crate) fn damaged() -> Error {
    Error::new(
        ErrorKind::Corrupt,
        "the cache's counters are damaged (one is not a non-negative integer, or is \
         absurdly large, or the clock is behind the newest entry): writes are refused, \
         writing nothing, until a check with repair \
         (`backlite check --repair FILE`, backlite_storage_check with repair) recounts them",
    )
}

/// The counters, as of the caller's read; [`damaged`] if they are.
/// A file without its `state` row (removed behind BackLite's back) has damaged
/// counters too: [`repair`] puts the row back.
pub(crate) fn read(conn: &Connection) -> Result<Counters> {
    conn.prepare_cached(table::LOAD)
        .and_then(|mut s| s.query_row([], |r| Counters::from_row(r, 0)).optional())
        .ctx("reading the cache counters")?
        .flatten()
        .ok_or_else(damaged)
}

/// The counters as stored, and the newest entry's tick (0 without entries), which the
/// clock must not be behind: the next insert would take a tick already used.
fn read_stored(conn: &Connection) -> Result<(Stored, i64)> {
    // No `state` row: nothing stored, every counter damaged.
    let stored = conn
        .prepare_cached(table::LOAD)
        .and_then(|mut s| s.query_row([], |r| stored(r, 0)).optional())
        .ctx("reading the cache counters")?
        .unwrap_or([None; 7]);
    let newest = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM entries", [], |r| {
            r.get(0)
        })
        .ctx("reading the cache counters")?;
    Ok((stored, newest))
}

/// Whether the counters are sound, as of the caller's read (check).
pub(crate) fn sound(conn: &Connection) -> Result<bool> {
    let (stored, newest) = read_stored(conn)?;
    Ok(Counters::from_stored(stored).is_some_and(|c| c.clock >= newest))
}

/// Rewrites damaged counters, in a transaction of its own on `conn` (check with
/// repair, before its write, which cannot begin on them); returns whether they were.
/// `count` and `total_size` are recounted from the rows (the check that follows
/// recounts them again, its own way). The clock becomes the highest tick any row
/// records, so no tick is used twice; a damaged lifetime counter is zeroed, the sound
/// ones are kept (and `stats_since` with them: it tells when they began).
pub(crate) fn repair(conn: &Connection) -> Result<bool> {
    let what = "repairing the cache counters";
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .ctx("locking the file to repair its counters")?;
    let (stored, newest) = read_stored(&tx)?;
    if Counters::from_stored(stored).is_some_and(|c| c.clock >= newest) {
        return Ok(false);
    }
    let highest: i64 = tx
        .query_row(table::HIGHEST_TICK, [], |r| r.get(0))
        .ctx(what)?;
    let (count, total_size) = tx
        .query_row(table::RECOUNT, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .ctx(what)?;
    let [clock, _, _, lifetime @ ..] = stored;
    let c = Counters {
        clock: clock.unwrap_or(0).max(newest).max(highest),
        count,
        total_size,
        lifetime: lifetime.map(|n| n.unwrap_or(0)),
    };
    // A `state` row removed behind BackLite's back is put back (counting from now).
    tx.execute(table::RESTORE_STATE, [])
        .ctx("restoring the cache state")?;
    write(&tx, &c)?;
    tx.commit().ctx(what)?;
    Ok(true)
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
