//! One write transaction: the counters and logical clock of the file, loaded at the
//! start and written back once at the end, and the row operations that keep them exact.

use crate::access::{self, Accesses, FLUSH_THRESHOLD};
use crate::blob_read;
use crate::counters::{self, Counters, Known};
use crate::entry::{self, State};
use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::eviction::EvictionPolicy;
use crate::lifetime::LifetimeStats;
use crate::remote::fill::FileState;
use crate::shared::FileShared;
use crate::table::{self, row_ref, RowRef, Seen, INLINE_MAX};
use crate::take::Dest;
use crate::value_files::{Read, Uncommitted, ValueName, Written};
use rusqlite::types::ValueRef;
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

/// How many hits [`Txn::write_oldest_accesses`] writes between two asks whether another
/// write waits: a hit of a large working set costs 10-40 µs to write, so a set waits
/// about a millisecond for the hit writer to give way.
pub(crate) const GIVE_WAY_EVERY: usize = 64;

/// The entry a waiting hit was made on, for `WRITE_HITS` (`None`: unknown).
fn entry_of(a: &access::Access) -> Option<i64> {
    Some(a.created).filter(|&c| c != access::UNKNOWN_ENTRY)
}

/// What a transaction removed, added to the handle's statistics once it commits.
#[derive(Default)]
pub(crate) struct Tally {
    pub evictions: u64,
    pub expirations: u64,
    /// The files of the values whose rows it removed: removed once it commits, so that
    /// a crash leaves at most an orphan file, never a row naming a missing file.
    pub files: Vec<String>,
    /// The files it wrote: removed unless it commits.
    pub written: Uncommitted,
}

/// What `Txn::load` reads: counters (`None`: damaged), earliest deadline, and the
/// preloaded entry.
type Loaded = (Option<Counters>, Option<i64>, Option<RowRef>);

/// What `Txn::read_entry` found under a key.
enum Found<R> {
    Live(R),
    Expired,
    Damaged(RowRef),
}

pub(crate) struct Txn<'c> {
    conn: &'c Connection,
    /// What this process's handles on the file share: the folder of value files.
    shared: &'c FileShared,
    /// This process.
    pid: u32,
    /// The process's buffered hits, taken for this transaction: those merged from the
    /// readers' shards already, and the shards' own once [`Txn::merge_waiting`] ran.
    accesses: &'c mut Accesses,
    /// The hits in the shards numbered up to this have ticks reserved by this
    /// transaction and are not merged into `accesses` yet (`None`: nothing waits there
    /// for it).
    unmerged: Option<u64>,
    /// Set once they are written to the rows: they leave the buffer at commit.
    pub accesses_written: bool,
    /// The clock before this transaction: ticks above it are this transaction's.
    pub clock_at_start: i64,
    /// The file's state when this transaction began.
    pub start: FileState,
    /// No deadline in the file is below it (`None`: none has one): the earliest one
    /// when read, lowered by each insert; a removal leaves it a bound.
    earliest_deadline: Option<i64>,
    /// A key looked up at load, with `(seq, value_id, size)` of its entry if any;
    /// valid until something else may have removed that entry.
    preloaded: Option<(Vec<u8>, Option<RowRef>)>,
    /// Wall-clock milliseconds, fixed for the whole transaction.
    pub now: i64,
    clock: i64,
    pub count: i64,
    pub total_size: i64,
    /// Hits, misses, evictions and expirations as the file held them at the start,
    /// plus the hits and misses this transaction took and the counts it merged (the
    /// evictions and expirations it makes are in `tally`).
    lifetime: [i64; 4],
    /// The counters as loaded, and whether a row changed since.
    loaded: Counters,
    dirty: bool,
    /// The counters the last insert wrote into its row, the newest: if they are still
    /// the counters at the end, nothing is left to write.
    written: Option<Counters>,
    pub tally: Tally,
    /// `INSERT_NEW_ENTRY`, kept for the rest of the transaction once used: a batch runs
    /// it per entry, and taking it from the statement cache each time (which hashes
    /// the SQL and copies it into a new key) was a tenth of a batch's instructions.
    insert_new: Option<CachedStatement<'c>>,
    /// `insert_new_entries` of each size, kept the same way.
    insert_new_run: [Option<CachedStatement<'c>>; 2],
}

/// An entry of a batch for [`Txn::insert_new_run`].
pub(crate) struct NewEntry<'a> {
    pub key: &'a [u8],
    /// At most [`INLINE_MAX`] bytes.
    pub value: &'a [u8],
    pub crc: u32,
    pub deadline: Option<i64>,
}

/// The file's `count` and `total_size` net of the entries due at `now` (which the next
/// write purges), read without writing: through the expiry index, O(due entries).
/// [`counters::damaged`] if they, or the clock, are.
pub(crate) fn live_counters(conn: &Connection, now: i64) -> Result<(i64, i64)> {
    // No `state` row (removed behind BackLite's back): damaged counters.
    let (clock, count, total_size, due, due_size): (_, _, _, i64, i64) = conn
        .prepare_cached(table::LIVE_COUNTERS)
        .and_then(|mut s| {
            s.query_row([now], |r| {
                let sound = |i| r.get_ref(i).map(counters::sound_value);
                Ok((sound(0)?, sound(1)?, sound(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .ctx("reading the cache counters")?
        .unwrap_or((None, None, None, 0, 0));
    match (clock, count, total_size) {
        (Some(_), Some(n), Some(size)) => Ok((n - due, size - due_size)),
        _ => Err(counters::damaged()),
    }
}

/// A deadline as `min(expires_at)` gives it: min() puts numbers before text and blobs,
/// so a damaged deadline that is a real is due by its value; text and blobs are never
/// due in SQL.
fn earliest(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(t) => Some(t),
        ValueRef::Real(t) => Some(t as i64),
        _ => None,
    }
}

/// The error of a statement that gave a row a tick of the clock: a tick some row
/// already has means the clock was behind the rows (damaged counters).
fn tick_taken(e: rusqlite::Error, what: &str) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            counters::damaged()
        }
        e => Error::sqlite(what, e),
    }
}

impl<'c> Txn<'c> {
    /// Loads the file's counters; the caller has begun an immediate transaction.
    /// With `key`, also looks up the entry a set of `key` replaces, in the same
    /// statement: the counters, the earliest deadline and the old entry are one read.
    /// `lookups`: the hits and misses this process counted, added to the file's, and
    /// its hits that proved misses, taken back from the file's hits.
    /// `known`: the counters and deadline bound as the connection's last commit left
    /// them, valid (no commit since): then only `key` is looked up.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        conn: &'c Connection,
        shared: &'c FileShared,
        pid: u32,
        now: i64,
        accesses: &'c mut Accesses,
        key: Option<&[u8]>,
        lookups: [u64; 3],
        known: Option<Known>,
    ) -> Result<Self> {
        let (loaded, earliest, old) = match known {
            Some(k) => {
                let old = match key {
                    Some(key) => conn
                        .prepare_cached(table::ROW_REF_BY_KEY)
                        .and_then(|mut s| s.query_row([key], |r| row_ref(r, 0)).optional())
                        .ctx("looking up a key")?,
                    None => None,
                };
                (k.counters, k.earliest_deadline, old)
            }
            None => Self::read_counters(conn, key)?,
        };
        let Counters {
            clock,
            count,
            total_size,
            lifetime: [hits, misses, evictions, expirations],
        } = loaded;
        let [looked_up_hits, looked_up_misses, unhits] = lookups;
        Ok(Txn {
            conn,
            shared,
            pid,
            accesses,
            unmerged: None,
            accesses_written: false,
            clock_at_start: clock,
            start: (clock, count, total_size),
            now,
            clock,
            count,
            total_size,
            lifetime: [
                // Never below 0: the hits taken back were counted in the file or here.
                counters::add(hits, looked_up_hits)
                    .saturating_sub(unhits.min(i64::MAX as u64) as i64)
                    .max(0),
                counters::add(misses, looked_up_misses),
                evictions,
                expirations,
            ],
            loaded,
            dirty: false,
            written: None,
            tally: Tally::default(),
            earliest_deadline: earliest,
            preloaded: key.map(|k| (k.to_vec(), old)),
            insert_new: None,
            insert_new_run: [None, None],
        })
    }

    /// Reads the counters, the earliest deadline and the entry under `key`, in one
    /// statement; [`counters::damaged`] if the counters are.
    fn read_counters(
        conn: &Connection,
        key: Option<&[u8]>,
    ) -> Result<(Counters, Option<i64>, Option<RowRef>)> {
        // The earliest deadline comes from the partial expiry index (its first entry),
        // so that a write with nothing due runs no purge at all.
        let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Loaded> {
            Ok((
                Counters::from_row(r, 0)?,
                earliest(r.get_ref(7)?),
                match r.get::<_, Option<i64>>(8)? {
                    Some(_) => Some(row_ref(r, 8)?),
                    None => None,
                },
            ))
        };
        // From the newest row if it holds them (None: it does not, or there is none).
        let newest = |r: &rusqlite::Row<'_>| match r.get_ref(0)? {
            ValueRef::Null => Ok(None),
            _ => row(r).map(Some),
        };
        let (sql, fallback) = match key {
            Some(_) => (table::LOAD_NEWEST_WITH_KEY, table::LOAD_WITH_KEY),
            None => (table::LOAD_NEWEST, table::LOAD),
        };
        let params = rusqlite::params_from_iter(key);
        let (loaded, earliest, old) = conn
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(params.clone(), newest).optional())
            .map(Option::flatten)
            .and_then(|found| match found {
                Some(found) => Ok(found),
                // No `state` row either (removed behind BackLite's back): damaged.
                None => conn
                    .prepare_cached(fallback)
                    .and_then(|mut s| s.query_row(params, row).optional())
                    .map(|found| found.unwrap_or((None, None, None))),
            })
            .ctx("reading the cache counters")?;
        // A damaged counter fails the write before it changes anything (check repairs).
        Ok((loaded.ok_or_else(counters::damaged)?, earliest, old))
    }

    /// The counters as they stand, and the deadline bound: what the connection knows
    /// once this transaction commits.
    pub fn known(&self) -> (Counters, Option<i64>) {
        (self.counters(), self.earliest_deadline)
    }

    /// Lowers the deadline bound to `deadline`, that of an entry inserted.
    fn inserted_deadline(&mut self, deadline: Option<i64>) {
        if let Some(d) = deadline {
            self.earliest_deadline = Some(self.earliest_deadline.map_or(d, |e| e.min(d)));
        }
    }

    /// Writes the counters back if anything changed, unless the last insert already
    /// wrote them as they stand.
    pub fn store(&self) -> Result<()> {
        let now = self.counters();
        if (!self.dirty && now == self.loaded) || self.written == Some(now) {
            return Ok(());
        }
        counters::write(self.conn, &now)
    }

    /// The counters as they stand.
    fn counters(&self) -> Counters {
        let [hits, misses, evictions, expirations] = self.lifetime;
        Counters {
            clock: self.clock,
            count: self.count,
            total_size: self.total_size,
            lifetime: [
                hits,
                misses,
                counters::add(evictions, self.tally.evictions),
                counters::add(expirations, self.tally.expirations),
            ],
        }
    }

    /// The counters with one more entry of `len` bytes, stored at tick `at`.
    fn with_entry(&self, at: i64, len: i64) -> Counters {
        Counters {
            clock: at,
            count: self.count + 1,
            total_size: self.total_size + len,
            ..self.counters()
        }
    }

    /// Adds the lifetime counters of another file (an import).
    pub fn merge_lifetime(&mut self, from: &LifetimeStats) {
        let [hits, misses, evictions, expirations] = &mut self.lifetime;
        *hits = counters::add(*hits, from.hits);
        *misses = counters::add(*misses, from.misses);
        *evictions = counters::add(*evictions, from.evictions);
        *expirations = counters::add(*expirations, from.expirations);
    }

    /// The file's state as this transaction leaves it.
    pub fn state(&self) -> FileState {
        (self.clock, self.count, self.total_size)
    }

    /// Changes the file's state without changing an entry (a delete of an absent key,
    /// a clear of an empty file): other processes' pending fills notice it.
    pub fn touch(&mut self) {
        self.tick();
    }

    /// Whether a row (live or not) is stored under `key`.
    pub fn has_row(&self, key: &[u8]) -> Result<bool> {
        self.conn
            .prepare_cached(table::ROW_REF_BY_KEY)
            .and_then(|mut s| s.exists([key]))
            .ctx("looking up a key")
    }

    /// The next tick of the file's logical clock.
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.dirty = true;
        self.clock
    }

    /// Deletes the entries that `select_sql` lists as `RowRef` columns, with
    /// their values, and takes them off the counters. (A plain SELECT then DELETEs by
    /// key: `DELETE ... RETURNING` builds a temporary table on every call.)
    fn remove_selected(
        &mut self,
        select_sql: &str,
        params: impl rusqlite::Params,
        what: &str,
    ) -> Result<u64> {
        let victims: Vec<RowRef> = {
            let mut stmt = self.conn.prepare_cached(select_sql).ctx(what)?;
            let rows = stmt.query_map(params, |r| row_ref(r, 0)).ctx(what)?;
            rows.collect::<rusqlite::Result<_>>().ctx(what)?
        };
        let n = victims.len() as u64;
        for (seq, value_id, size, file) in victims {
            self.delete_row(seq, value_id, size, file, what)?;
        }
        Ok(n)
    }

    /// Deletes one entry, its value if stored apart, and its share of the counters:
    /// `size`, or when that is unknown (a damaged row), a recount of the rows left.
    /// The value's `file`, if any, is removed after the commit.
    fn delete_row(
        &mut self,
        seq: i64,
        value_id: Option<i64>,
        size: Option<i64>,
        file: Option<String>,
        what: &str,
    ) -> Result<()> {
        self.delete_rows_of(seq, value_id, file, what)?;
        self.written = None;
        match size.filter(|&n| n <= self.total_size) {
            Some(n) => {
                self.count -= 1;
                self.total_size -= n;
                Ok(())
            }
            None => self.recount(what),
        }
    }

    /// Deletes the rows of one entry and of its value if stored apart, and keeps its
    /// value's `file` for removal after the commit; the counters are the caller's.
    fn delete_rows_of(
        &mut self,
        seq: i64,
        value_id: Option<i64>,
        file: Option<String>,
        what: &str,
    ) -> Result<()> {
        self.preloaded = None;
        self.conn
            .prepare_cached(table::DELETE_ENTRY)
            .and_then(|mut s| s.execute([seq]))
            .ctx(what)?;
        if let Some(id) = value_id {
            self.conn
                .prepare_cached(table::DELETE_BLOB)
                .and_then(|mut s| s.execute([id]))
                .ctx(what)?;
        }
        self.tally.files.extend(file);
        self.dirty = true;
        Ok(())
    }

    /// Sets the counters to what the rows say: every row, and each size that is its
    /// value's length (a damaged row's is unknown; it recounts again when removed).
    /// O(entries), for the rare removal of a row whose size is damaged.
    fn recount(&mut self, what: &str) -> Result<()> {
        (self.count, self.total_size) = self
            .conn
            .prepare_cached(table::RECOUNT)
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .ctx(what)?;
        Ok(())
    }

    /// Gives the buffered hits that have none a tick of the clock, in the order they
    /// happened: before anything this transaction sets. Those still in the readers'
    /// shards are not visited: their ticks are reserved ([`AccessLog::reserve`]), and
    /// they are merged only if this transaction needs them ([`Txn::merge_waiting`]).
    /// Merging and ticking every waiting hit was the first write after a burst of
    /// reads: 1.5-6 ms for 5,000-16,000 keys, a `set_many` of 1,000 items taking 3-4x
    /// the next one (bench/README.md, "set_many").
    ///
    /// [`AccessLog::reserve`]: crate::access::AccessLog::reserve
    pub fn tick_accesses(&mut self) {
        let mut clock = self.clock;
        self.accesses.tick_fresh(|| {
            clock += 1;
            clock
        });
        let (reserved, upto, crowded) = self.shared.accesses_in(self.pid).reserve(clock);
        clock += reserved;
        self.unmerged = Some(upto);
        if clock != self.clock {
            self.clock = clock;
            self.dirty = true;
        }
        if crowded {
            // Only a merge lets reservations go, and writes that need none kept one
            // each, without bound.
            self.merge_waiting();
        }
    }

    /// Merges the hits waiting in the readers' shards with the ticks this transaction
    /// reserved for them, before anything reads the waiting hits: an eviction's
    /// victim, a write of the hits.
    fn merge_waiting(&mut self) {
        let Some(upto) = self.unmerged.take() else {
            return;
        };
        self.shared
            .accesses_in(self.pid)
            .merge_shards_into(self.accesses, upto);
        // Each has its reserved tick; one without (none expected) is ticked now.
        let mut clock = self.clock;
        self.accesses.tick_fresh(|| {
            clock += 1;
            clock
        });
        if clock != self.clock {
            self.clock = clock;
            self.dirty = true;
        }
    }

    /// Writes the ticked hits to their rows, which moves each row to its hit's place
    /// in the access order. A row created after a hit's tick (set again by another
    /// process meanwhile) keeps its fresh start.
    pub fn write_accesses(&mut self) -> Result<()> {
        self.write_oldest_accesses(usize::MAX, &|| false)
    }

    /// Writes the waiting hits to their rows in the order of their ticks, oldest first,
    /// at most `limit` of them, and stops early once `give_way` says another write waits
    /// (asked every [`GIVE_WAY_EVERY`] hits); the others stay ticked, for a later
    /// write. A set then waits for a bounded write, however many hits wait: one that
    /// wrote a full buffer of a large working set's hits (or waited for the hit writer
    /// to) took 0.2-0.8 s (bench/README.md, "Hits written without holding up sets").
    pub fn write_oldest_accesses(
        &mut self,
        limit: usize,
        give_way: &dyn Fn() -> bool,
    ) -> Result<()> {
        self.preloaded = None;
        self.merge_waiting();
        if self.accesses_written || self.accesses.is_empty() {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached(table::WRITE_HITS)
            .ctx("recording hits")?;
        let tick =
            |a: &access::Access| a.tick.expect("every hit is ticked at the start of a write");
        let mut keys: Vec<(&Vec<u8>, &access::Access)> = self.accesses.iter().collect();
        if keys.len() > limit {
            keys.select_nth_unstable_by_key(limit, |(_, a)| tick(a));
            keys.truncate(limit);
        }
        // In the order of their ticks: each row moves to the table's end, so the rows
        // are appended in order, on SQLite's append path, filling each page before the
        // next. (In key order, they landed in random order among the new rowids, split
        // pages half full, and cost 10-40% more CPU per written hit.)
        keys.sort_unstable_by_key(|(_, a)| tick(a));
        let mut written = 0;
        for (key, a) in &keys {
            if written % GIVE_WAY_EVERY == 0 && written > 0 && give_way() {
                break;
            }
            stmt.execute(params![a.hits as i64, tick(a), key, entry_of(a)])
                .map_err(|e| tick_taken(e, "recording hits"))?;
            written += 1;
        }
        // A hit ticked by an earlier write may move its row above the newest one, which
        // then must be given the counters (an insert of this write stays above it).
        self.dirty = true;
        if written == self.accesses.len() {
            self.accesses_written = true;
            return Ok(());
        }
        let done: Vec<Vec<u8>> = keys[..written].iter().map(|(k, _)| (*k).clone()).collect();
        for key in done {
            self.accesses.remove(&key);
        }
        Ok(())
    }

    /// How many hits wait in this transaction's buffer, written or not.
    pub fn accesses_waiting(&mut self) -> usize {
        self.merge_waiting();
        if self.accesses_written {
            0
        } else {
            self.accesses.len()
        }
    }

    /// Whether enough hits wait that they should be written now.
    pub fn accesses_overflow(&mut self) -> bool {
        if self.accesses.len() + self.shared.accesses_in(self.pid).in_shards() < FLUSH_THRESHOLD {
            return false; // (counted without merging: a key in two shards counts twice)
        }
        self.merge_waiting();
        self.accesses.len() >= FLUSH_THRESHOLD
    }

    /// Drops the buffered hits of `key`: it is being set again, and starts over.
    fn forget_accesses(&mut self, key: &[u8]) {
        // (Hashing the key for an empty buffer was 2% of a batch.)
        if !self.accesses_written && !self.accesses.is_empty() {
            self.accesses.remove(key);
        }
    }

    /// Removes every entry that is due; the partial index on `expires_at` means only
    /// those entries are visited.
    pub fn purge_expired(&mut self) -> Result<()> {
        if !self.earliest_deadline.is_some_and(|d| d <= self.now) {
            return Ok(());
        }
        let what = "removing expired entries";
        let n = self.remove_selected(table::DUE, [self.now], what)?;
        if n > 0 {
            self.preloaded = None;
        }
        self.tally.expirations += n;
        // Past the bound now: the next deadline, for this and the next writes.
        self.earliest_deadline = self
            .conn
            .prepare_cached(table::EARLIEST_DEADLINE)
            .and_then(|mut s| s.query_row([], |r| r.get_ref(0).map(earliest)))
            .ctx(what)?;
        Ok(())
    }

    /// Deletes the entry under `key`; returns whether there was one. Its buffered hits
    /// go with it.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.remove_key_seq(key)?.is_some())
    }

    /// [`Txn::remove_key`], returning the `seq` of the entry removed, if any.
    pub fn remove_key_seq(&mut self, key: &[u8]) -> Result<Option<i64>> {
        self.forget_accesses(key);
        self.shared.fills.forget_in(self.pid, Some(key));
        let found = match self.preloaded.take() {
            Some((k, old)) if k == key => old,
            _ => self
                .conn
                .prepare_cached(table::ROW_REF_BY_KEY)
                .and_then(|mut s| s.query_row([key], |r| row_ref(r, 0)).optional())
                .ctx("deleting an entry")?,
        };
        match found {
            Some((seq, value_id, size, file)) => {
                self.delete_row(seq, value_id, size, file, "deleting an entry")?;
                Ok(Some(seq))
            }
            None => Ok(None),
        }
    }

    /// The live value under `key` and its deadline, read inside this transaction (due
    /// entries are already purged). A damaged value is removed and reads as absent.
    pub fn find(&mut self, key: &[u8]) -> Result<Option<(Vec<u8>, Option<i64>)>> {
        match self.read_entry(key, |value, deadline| (value.to_vec(), deadline))? {
            Some(Found::Live(found)) => Ok(Some(found)),
            Some(Found::Damaged(row)) => {
                self.remove_damaged(key, row)?;
                Ok(None)
            }
            Some(Found::Expired) | None => Ok(None),
        }
    }

    /// Reads and classifies the entry under `key`, handing a live value to `on_live`.
    fn read_entry<R>(
        &self,
        key: &[u8],
        on_live: impl FnOnce(&[u8], Option<i64>) -> R,
    ) -> Result<Option<Found<R>>> {
        let now = self.now;
        let mut on_live = Some(on_live);
        let mut in_file = None;
        let found = self
            .conn
            .prepare_cached(table::READ_FOR_WRITE)
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    let (size, value) = (r.get_ref(2)?, r.get_ref(7)?);
                    let row = row_ref(r, 0)?;
                    if let (Some(_), ValueRef::Null) = (&row.3, value) {
                        // Kept in a file: read below, once the statement is done.
                        let size = entry::int(size).and_then(|n| u64::try_from(n).ok());
                        let crc = entry::int(r.get_ref(5)?).and_then(|c| u32::try_from(c).ok());
                        in_file = Some((size, crc, entry::deadline(r.get_ref(6)?)));
                        return Ok(Found::Damaged(row));
                    }
                    Ok(
                        match entry::classify(r.get_ref(5)?, size, r.get_ref(6)?, value, now) {
                            State::Live { value, deadline } => {
                                Found::Live((on_live.take().expect("once"))(value, deadline))
                            }
                            State::Expired => Found::Expired,
                            State::Damaged => Found::Damaged(row),
                        },
                    )
                })
                .optional()
            })
            .ctx("looking up a key")?;
        let (Some(Found::Damaged(row)), Some((size, crc, deadline))) = (&found, in_file) else {
            return Ok(found);
        };
        let (Some(size), Some(crc), Some(deadline)) = (size, crc, deadline) else {
            return Ok(found);
        };
        if crate::expiration::is_due(deadline, now) {
            return Ok(Some(Found::Expired));
        }
        let name = row.3.as_deref().and_then(ValueName::parse);
        let files = self.shared.value_files(false)?;
        let (Some(name), Some(files)) = (name, files) else {
            // No folder at the path: no damage if it moved with the file.
            self.shared.still_here()?;
            return Ok(found);
        };
        Ok(match files.read(&name, size, crc)? {
            Read::Value(value) => Some(Found::Live((on_live.take().expect("once"))(
                &value, deadline,
            ))),
            Read::Missing | Read::Damaged => {
                // No damage if the folder moved with the file (`still_here`).
                self.shared.still_here()?;
                found
            }
        })
    }

    /// Deletes a damaged entry found under `key`; its buffered hits go with it.
    fn remove_damaged(&mut self, key: &[u8], (seq, value_id, held, file): RowRef) -> Result<()> {
        self.forget_accesses(key);
        self.delete_row(seq, value_id, held, file, "removing a damaged entry")
    }

    /// Deletes a damaged row found by a walk of the whole file (check), whose key may
    /// not even be a blob. The caller rewrites the counters.
    pub fn remove_damaged_row(
        &mut self,
        key: Option<&[u8]>,
        seq: i64,
        value_id: Option<i64>,
        file: Option<String>,
    ) -> Result<()> {
        if let Some(key) = key {
            self.forget_accesses(key);
        }
        self.delete_row(seq, value_id, Some(0), file, "removing a damaged entry")
    }

    /// A random 64-bit number from SQLite's generator.
    pub fn random(&self) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT random()")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .ctx("drawing a lease token")
    }

    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// Deletes the entry under `key` if its row still names the value file `file`, which
    /// a reader found damaged (cut short, or failing its CRC): a file never changes once
    /// a row names it, so that entry is damaged, and nothing needs reading again (where
    /// `remove_if_damaged` reads the whole value).
    pub fn remove_if_names(&mut self, key: &[u8], file: &str) -> Result<()> {
        let row = self
            .conn
            .prepare_cached(table::ROW_REF_BY_KEY)
            .and_then(|mut s| s.query_row([key], |r| row_ref(r, 0)).optional())
            .ctx("looking up a key")?;
        match row {
            Some(row) if row.3.as_deref() == Some(file) => self.remove_damaged(key, row),
            _ => Ok(()),
        }
    }

    /// Deletes the entry under `key` if its row is still the one a look-up saw
    /// (`seen`) and found damaged: that row's value is damaged (a value is never
    /// changed once its row commits), so nothing is read again, where
    /// `remove_if_damaged` reads the whole value into memory. A row set since is kept.
    pub fn remove_if_seen(&mut self, key: &[u8], seen: &Seen) -> Result<()> {
        let row = self
            .conn
            .prepare_cached(table::ROW_REF_SEEN_BY_KEY)
            .and_then(|mut s| {
                s.query_row([key], |r| Ok((row_ref(r, 0)?, Seen::read(r, 5)?)))
                    .optional()
            })
            .ctx("looking up a key")?;
        match row {
            Some((row, now)) if now == *seen => self.remove_damaged(key, row),
            _ => Ok(()),
        }
    }

    /// Deletes the entry under `key` if it is damaged (see `entry::classify`). A value
    /// in `blobs` is checked a chunk at a time (a pull reader that found one damaged
    /// at its end: up to SQLite's 1e9 bytes), never held whole in memory.
    pub fn remove_if_damaged(&mut self, key: &[u8]) -> Result<()> {
        let row = self
            .conn
            .prepare_cached(table::ROW_REF_SEEN_BY_KEY)
            .and_then(|mut s| {
                // (`crc`, the fourth of the `Seen` columns after the five of `RowRef`.)
                s.query_row([key], |r| Ok((row_ref(r, 0)?, entry::int(r.get_ref(8)?))))
                    .optional()
            })
            .ctx("looking up a key")?;
        if let Some((row @ (_, Some(id), Some(size), None), crc)) = row {
            if let Some(crc) = crc.and_then(|c| u32::try_from(c).ok()) {
                let dest = Dest::Visit {
                    len: size as u64,
                    visit: &mut |_| true,
                };
                if !blob_read::read_into(self.conn, id, crc, dest)? {
                    self.remove_damaged(key, row)?;
                }
                return Ok(());
            }
        }
        if let Some(Found::Damaged(row)) = self.read_entry(key, |_, _| ())? {
            self.remove_damaged(key, row)?;
        }
        Ok(())
    }

    /// Stores a new entry; any older entry under `key` must already be removed.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<()> {
        self.preloaded = None;
        let at = self.tick();
        let (inline, value_id) = if value.len() <= INLINE_MAX {
            (Some(value), None)
        } else {
            self.conn
                .prepare_cached(table::INSERT_BLOB)
                .and_then(|mut s| s.execute([value]))
                .ctx("storing a value")?;
            (None, Some(self.conn.last_insert_rowid()))
        };
        self.insert_row(
            key,
            value_id,
            value.len() as i64,
            crc,
            at,
            deadline,
            inline,
            None,
        )
    }

    /// `insert` of a value of at most [`INLINE_MAX`] bytes if `key` has no entry, and
    /// returns true; false: it has one, and nothing was written. Done as `remove_key`
    /// then `insert` would, in one statement where they take two.
    pub fn insert_if_new(
        &mut self,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<bool> {
        debug_assert!(value.len() <= INLINE_MAX);
        self.shared.fills.forget_in(self.pid, Some(key));
        self.preloaded = None;
        let at = self.tick();
        let len = value.len() as i64;
        let after = self.with_entry(at, len);
        let [_, c2, c3, c4, c5, c6, c7] = after.values();
        let (crc, now) = (crc as i64, self.now);
        let inserted = self
            .conn
            .prepare_cached(table::INSERT_ENTRY_IF_NEW)
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    None::<i64>,
                    len,
                    crc,
                    at,
                    deadline,
                    value,
                    now,
                    c2,
                    c3,
                    c4,
                    c5,
                    c6,
                    c7
                ])
            })
            .map_err(|e| tick_taken(e, "storing an entry"))?;
        if inserted == 0 {
            // Its tick goes to the entry stored in its place.
            self.clock -= 1;
            return Ok(false);
        }
        self.forget_accesses(key);
        self.inserted_deadline(deadline);
        self.count += 1;
        self.total_size += len;
        self.written = Some(after);
        Ok(true)
    }

    /// Stores a new entry with a value of at most [`INLINE_MAX`] bytes if `key` has
    /// none, and returns true; false: it has one, and nothing was written. One
    /// statement where removing the old entry first takes two (a batch of new keys).
    /// The row carries no counters: binding them per entry cost a batch 15% more
    /// instructions per item than the one UPDATE at its end.
    pub fn insert_if_absent(
        &mut self,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<bool> {
        debug_assert!(value.len() <= INLINE_MAX);
        self.preloaded = None;
        let at = self.tick();
        let stmt = match &mut self.insert_new {
            Some(stmt) => stmt,
            None => self.insert_new.insert(
                self.conn
                    .prepare_cached(table::INSERT_NEW_ENTRY)
                    .ctx("storing an entry")?,
            ),
        };
        let inserted = stmt
            .execute(params![
                key,
                value.len() as i64,
                crc as i64,
                at,
                deadline,
                value,
                self.now
            ])
            .map_err(|e| tick_taken(e, "storing an entry"))?;
        if inserted == 0 {
            return Ok(false);
        }
        self.inserted_deadline(deadline);
        // A key set anew starts over (as `remove_key` does for a key that had an entry).
        self.forget_accesses(key);
        self.count += 1;
        self.total_size += value.len() as i64;
        // Its row, now the newest, holds no counters: `store` writes them.
        self.written = None;
        Ok(true)
    }

    /// Stores `entries` in order, each as `remove_key` then `insert` would (a batch),
    /// several rows a statement (runs of each size of [`table::NEW_ENTRIES_AT_ONCE`] in
    /// turn, the few left one at a time). A key that had an entry (or comes twice) is
    /// not written by it: its entry is replaced afterwards, at the tick it was given,
    /// so the order is the batch's.
    /// Once most rows of a run were not written (a batch of keys that have entries),
    /// the rest go one at a time, as finding them costs a look-up each.
    pub fn insert_new_run(&mut self, entries: &[NewEntry<'_>]) -> Result<()> {
        let mut done = 0;
        'sizes: for (size, &rows) in table::NEW_ENTRIES_AT_ONCE.iter().enumerate() {
            while entries.len() - done >= rows {
                let run = &entries[done..done + rows];
                done += rows;
                if !self.insert_new_rows(size, run)? {
                    break 'sizes;
                }
            }
        }
        for e in &entries[done..] {
            if !self.insert_if_absent(e.key, e.value, e.crc, e.deadline)? {
                self.remove_key(e.key)?;
                let at = self.tick();
                self.insert_new_at(e, at)?;
            }
        }
        Ok(())
    }

    /// One statement of `insert_new_run`: `run` holds `NEW_ENTRIES_AT_ONCE[size]`
    /// entries. Returns whether most of its rows were written.
    fn insert_new_rows(&mut self, size: usize, run: &[NewEntry<'_>]) -> Result<bool> {
        let what = "storing an entry";
        self.preloaded = None;
        let first = self.clock + 1;
        self.clock += run.len() as i64;
        self.dirty = true;
        let stmt = match &mut self.insert_new_run[size] {
            Some(stmt) => stmt,
            None => self.insert_new_run[size].insert(
                self.conn
                    .prepare_cached(table::insert_new_entries(size))
                    .ctx(what)?,
            ),
        };
        for (i, e) in run.iter().enumerate() {
            let at = first + i as i64;
            let n = 7 * i;
            stmt.raw_bind_parameter(n + 1, e.key).ctx(what)?;
            stmt.raw_bind_parameter(n + 2, e.value.len() as i64)
                .ctx(what)?;
            stmt.raw_bind_parameter(n + 3, e.crc as i64).ctx(what)?;
            stmt.raw_bind_parameter(n + 4, at).ctx(what)?;
            stmt.raw_bind_parameter(n + 5, e.deadline).ctx(what)?;
            stmt.raw_bind_parameter(n + 6, e.value).ctx(what)?;
            stmt.raw_bind_parameter(n + 7, self.now).ctx(what)?;
        }
        let inserted = stmt.raw_execute().map_err(|e| tick_taken(e, what))?;
        self.written = None;
        for (i, e) in run.iter().enumerate() {
            let at = first + i as i64;
            // Which rows were not written: only when some were not.
            if inserted < run.len() && !self.wrote(e.key, at)? {
                self.remove_key(e.key)?;
                self.insert_new_at(e, at)?;
                continue;
            }
            self.inserted_deadline(e.deadline);
            self.forget_accesses(e.key);
            self.count += 1;
            self.total_size += e.value.len() as i64;
        }
        Ok(inserted >= run.len() / 2)
    }

    /// Whether the entry under `key` is the one written at tick `at`.
    fn wrote(&self, key: &[u8], at: i64) -> Result<bool> {
        let seq: Option<i64> = self
            .conn
            .prepare_cached(table::SEQ_BY_KEY)
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .ctx("looking up a key")?;
        Ok(seq == Some(at))
    }

    /// `insert_if_absent` at tick `at`, of a key that has no entry.
    fn insert_new_at(&mut self, e: &NewEntry<'_>, at: i64) -> Result<()> {
        let clock = std::mem::replace(&mut self.clock, at - 1);
        let inserted = self.insert_if_absent(e.key, e.value, e.crc, e.deadline);
        self.clock = clock.max(self.clock);
        match inserted? {
            true => Ok(()),
            false => Err(Error::new(
                crate::error::ErrorKind::Internal,
                "an entry removed in this transaction is still there",
            )),
        }
    }

    /// Stores a new entry whose value is kept in the file `written` (complete, and
    /// named by no row yet); any older entry under `key` must already be removed.
    pub fn insert_file(
        &mut self,
        key: &[u8],
        written: &Written,
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<()> {
        self.preloaded = None;
        let at = self.tick();
        let name = written.name.file_name();
        self.insert_row(
            key,
            None,
            written.len as i64,
            crc,
            at,
            deadline,
            None,
            Some(&name),
        )
    }

    /// The entry row of `insert` and `insert_file`, carrying the counters it makes
    /// (this row is now the newest).
    #[allow(clippy::too_many_arguments)]
    fn insert_row(
        &mut self,
        key: &[u8],
        value_id: Option<i64>,
        len: i64,
        crc: u32,
        at: i64,
        deadline: Option<i64>,
        inline: Option<&[u8]>,
        file: Option<&str>,
    ) -> Result<()> {
        let after = self.with_entry(at, len);
        // The clock is the row's own tick, `?5`.
        let [_, c2, c3, c4, c5, c6, c7] = after.values();
        let (crc, now) = (crc as i64, self.now);
        match file {
            None => self
                .conn
                .prepare_cached(table::INSERT_ENTRY)
                .and_then(|mut s| {
                    s.execute(params![
                        key, value_id, len, crc, at, deadline, inline, now, c2, c3, c4, c5, c6, c7
                    ])
                }),
            Some(file) => self
                .conn
                .prepare_cached(table::INSERT_FILE_ENTRY)
                .and_then(|mut s| {
                    s.execute(params![
                        key, value_id, len, crc, at, deadline, inline, now, c2, c3, c4, c5, c6, c7,
                        file
                    ])
                }),
        }
        .map_err(|e| tick_taken(e, "storing an entry"))?;
        self.inserted_deadline(deadline);
        self.count += 1;
        self.total_size += len;
        self.written = Some(after);
        Ok(())
    }

    /// Evicts entries by `policy` until `total_size + incoming <= max_size`.
    pub fn evict_to_fit(
        &mut self,
        policy: EvictionPolicy,
        max_size: i64,
        incoming: i64,
    ) -> Result<()> {
        while self.total_size + incoming > max_size {
            let Some((seq, value_id, size, file)) = self.next_victim(policy)? else {
                break;
            };
            self.delete_row(seq, value_id, size, file, "evicting an entry")?;
            self.tally.evictions += 1;
        }
        Ok(())
    }

    /// `insert_if_new` into a file too full for it, when one victim makes room: the
    /// victim `evict_to_fit` would take is chosen first, the entry inserted with the
    /// counters as they stand once that victim is gone, then the victim deleted.
    /// Returns false with nothing written but the hits (which `evict_to_fit` writes
    /// too) when `key` has an entry, or one victim does not make room or has a damaged
    /// size: the caller then goes the usual way (remove the key's entry, evict, insert),
    /// whose look-up of the key this spares an evicting set of a new key (about 5.7k
    /// of its 59k instructions). The victim is chosen before the insert, so the entry
    /// being written is never chosen to make room for itself.
    /// MRU and LIFO delete their victim first: it is mostly the table's last row, on
    /// the page the insert writes; deleted after the insert, it made that page split
    /// when full and then left it almost empty, 5.9 WAL pages a set where deleting
    /// first writes 2 (MRU, the bench's file). A victim deleted first must make room
    /// for a key known to have no entry (else replacing the key's entry might have made
    /// room without it), so whether the key has one is asked in the victim's statement.
    pub fn insert_if_new_evicting(
        &mut self,
        policy: EvictionPolicy,
        max_size: i64,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<bool> {
        use EvictionPolicy::{LastInFirstOut, MostRecentlyUsed};
        let delete_first = matches!(policy, MostRecentlyUsed | LastInFirstOut);
        let len = value.len() as i64;
        let beside = Some(key).filter(|_| delete_first);
        let Some(((seq, value_id, Some(size), file), key_has_entry)) =
            self.next_victim_beside(policy, beside)?
        else {
            return Ok(false);
        };
        if key_has_entry || size > self.total_size || self.total_size - size + len > max_size {
            return Ok(false);
        }
        if delete_first {
            self.delete_row(seq, value_id, Some(size), file, "evicting an entry")?;
            self.tally.evictions += 1;
            // No entry under `key`, and this transaction holds the write lock.
            return match self.insert_if_new(key, value, crc, deadline)? {
                true => Ok(true),
                false => Err(Error::new(
                    ErrorKind::Internal,
                    "storing an entry: a key found without an entry had one",
                )),
            };
        }
        self.count -= 1;
        self.total_size -= size;
        self.tally.evictions += 1;
        let inserted = self.insert_if_new(key, value, crc, deadline);
        if !matches!(inserted, Ok(true)) {
            self.count += 1;
            self.total_size += size;
            self.tally.evictions -= 1;
            return inserted;
        }
        self.delete_rows_of(seq, value_id, file, "evicting an entry")?;
        Ok(true)
    }

    /// The entry `policy` evicts next, none when the counters say the file is empty.
    /// The victim must be chosen with every hit in its place. For MRU the waiting hits
    /// are all written first (once a write): a hit can make any row the most recent.
    /// For LRU and LFU a hit only ever moves its row later in the order (to its tick,
    /// which is newer than the row's place; with one more hit), so only the hits of the
    /// rows that come first need writing: the first row is taken, its hit written if
    /// one waits, and the order asked again, until the first row has none. The rows
    /// after it stay where they are, and so after their hits; the victim is the one
    /// writing every hit first would give, without a set after a burst of reads
    /// writing all of them (16,384 and more: 0.3 s) to evict one entry.
    fn next_victim(&mut self, policy: EvictionPolicy) -> Result<Option<RowRef>> {
        Ok(self.next_victim_beside(policy, None)?.map(|(v, _)| v))
    }

    /// [`Txn::next_victim`], and whether `key` has an entry (false when `key` is
    /// `None`).
    fn next_victim_beside(
        &mut self,
        policy: EvictionPolicy,
        key: Option<&[u8]>,
    ) -> Result<Option<(RowRef, bool)>> {
        if policy.uses_accesses() {
            self.merge_waiting();
        }
        if policy == EvictionPolicy::MostRecentlyUsed {
            self.write_accesses()?;
        }
        if self.count < 1 {
            return Ok(None);
        }
        loop {
            // One row: no list to collect, as `remove_selected` does.
            let sql = match key {
                Some(_) => table::victim_beside_key(policy),
                None => table::victim(policy),
            };
            let victim = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(key), |r| {
                        Ok((row_ref(r, 0)?, key.is_some() && r.get(5)?))
                    })
                    .optional()
                })
                .ctx("evicting an entry")?;
            let Some(v) = victim else {
                return Ok(None);
            };
            if !policy.uses_accesses() || self.accesses_written || self.accesses.is_empty() {
                return Ok(Some(v));
            }
            let victim_key: Vec<u8> = self
                .conn
                .prepare_cached(table::KEY_BY_SEQ)
                .and_then(|mut s| s.query_row([v.0 .0], |r| r.get(0)))
                .ctx("evicting an entry")?;
            let Some(a) = self.accesses.get(&victim_key) else {
                return Ok(Some(v));
            };
            let (hits, tick, created) = (a.hits, a.tick, entry_of(a));
            let tick = tick.expect("every hit is ticked at the start of a write");
            self.preloaded = None;
            self.conn
                .prepare_cached(table::WRITE_HITS)
                .and_then(|mut s| s.execute(params![hits as i64, tick, victim_key, created]))
                .map_err(|e| tick_taken(e, "recording hits"))?;
            self.accesses.remove(&victim_key);
            // It may now be the newest row, which holds the counters (as in
            // `write_accesses`).
            self.dirty = true;
        }
    }

    /// Overwrites the counters (repair).
    pub fn set_counters(&mut self, count: i64, total_size: i64) {
        self.count = count;
        self.total_size = total_size;
        self.dirty = true;
        self.written = None;
    }

    /// Deletes every entry.
    pub fn clear(&mut self) -> Result<()> {
        self.preloaded = None;
        let files: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached(table::FILES)
                .ctx("clearing the cache")?;
            let rows = stmt.query_map([], |r| r.get(0)).ctx("clearing the cache")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("clearing the cache")?
        };
        self.tally.files.extend(files);
        self.shared.fills.forget_in(self.pid, None);
        self.conn
            .execute_batch(table::CLEAR)
            .ctx("clearing the cache")?;
        if !self.accesses_written {
            self.accesses.remove_all();
        }
        self.count = 0;
        self.total_size = 0;
        self.dirty = true;
        self.written = None;
        Ok(())
    }
}
