//! Moving entries out of and into a file, one at a time, so that a cache of any size
//! moves in bounded memory: export streams one read of the table, and import writes
//! everything in one transaction (a bad entry anywhere leaves the file as it was).

use crate::entry::{self, State};
use crate::error::{Error, Result, SqliteContext};
use crate::expiration::is_due;
use crate::lifetime::{self, LifetimeStats};
use crate::staging::{Staged, StagedEntry, Staging};
use crate::storage::Storage;
use crate::table;
use crate::take::Own;
use crate::txn::Txn;
use crate::value_files::Read;
use rusqlite::params;
use rusqlite::types::ValueRef;

/// One live entry, as export hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportedEntry<'a> {
    /// The key, as stored.
    pub key: &'a [u8],
    /// The value, as stored.
    pub value: &'a [u8],
    /// Wall-clock deadline in milliseconds since the Unix epoch; `None`: never.
    pub expires_at_ms: Option<i64>,
    /// Hits recorded for the entry (buffered hits included once written).
    pub hits: u64,
    /// When the entry was set, in milliseconds since the Unix epoch; `None` when the
    /// file does not know (entries set before schema 2).
    pub set_at_ms: Option<i64>,
}

/// What an export or import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferSummary {
    /// Entries exported, or imported and stored (once each: a key given twice is one).
    pub entries: u64,
    /// Export: damaged entries left out. Import: entries already expired, not stored.
    pub skipped: u64,
    /// Import: entries evicted afterwards to bring the file under `max_size`.
    pub evicted: u64,
}

/// Takes the entries of an import: kept aside, the files of large values written at
/// once, until its transaction stores them all (see [`Storage::import`]).
pub struct Importer<'s, 't, 'c> {
    storage: &'s Storage,
    into: Into<'t, 'c>,
}

/// Where an [`Importer`] puts what it is given.
enum Into<'t, 'c> {
    /// Aside, before the transaction.
    Staging(&'t mut Staging),
    /// Straight into the transaction (no value is kept in a file, or nowhere to stage).
    Storing(Storing<'t, 'c>),
}

/// Stores entries inside an import's transaction.
struct Storing<'t, 'c> {
    txn: &'t mut Txn<'c>,
    summary: TransferSummary,
    /// The `seq` of the first entry this import stored: rows from it on are its own
    /// (inserts append), so replacing one replaces an entry it already counted.
    first_stored: Option<i64>,
}

impl Importer<'_, '_, '_> {
    /// Stores `value` under `key` (replacing any entry there) with its deadline, hit
    /// count and time of set (`None`: now). An entry already due is skipped; a value
    /// larger than `max_size` (or than `MAX_VALUE_SIZE` when values are never kept in
    /// files) fails the whole import, as a set refuses it.
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        expires_at_ms: Option<i64>,
        hits: u64,
        set_at_ms: Option<i64>,
    ) -> Result<()> {
        if value.len() as u64 > self.storage.value_limit() {
            return Err(self.storage.too_large(value.len()));
        }
        let entry = StagedEntry {
            key,
            value: Staged::Value(value),
            expires_at_ms,
            hits,
            set_at_ms,
            origin: 0,
        };
        match &mut self.into {
            Into::Staging(staging) => staging.put(self.storage, value, entry),
            Into::Storing(storing) => storing.store(self.storage, entry).map(|_| ()),
        }
    }

    /// Sets the caller's position (a line number) of the entries and counters it puts
    /// next: a failure to store one once they are all given is handed to
    /// [`Storage::import`]'s `failed` with it (one while giving them is the put's own).
    pub fn at(&mut self, origin: u64) {
        if let Into::Staging(staging) = &mut self.into {
            staging.at(origin);
        }
    }

    /// Adds lifetime counters of another file (its export) to this file's; counting
    /// is then since the earlier of the two times.
    pub fn merge_lifetime(&mut self, counters: &LifetimeStats) -> Result<()> {
        match &mut self.into {
            Into::Staging(staging) => {
                staging.merge_lifetime(counters);
                Ok(())
            }
            Into::Storing(storing) => storing.merge_lifetime(counters),
        }
    }
}

impl Storing<'_, '_> {
    /// Stores one entry; returns whether a row now names its file written ahead.
    fn store(&mut self, storage: &Storage, e: StagedEntry<'_>) -> Result<bool> {
        // A key given twice (dumps put end to end) is one entry, counted once.
        let removed = self.txn.remove_key_seq(e.key)?;
        if removed.zip(self.first_stored).is_some_and(|(r, f)| r >= f) {
            self.summary.entries -= 1;
        }
        if matches!(e.value, Staged::Due) || is_due(e.expires_at_ms, self.txn.now) {
            self.summary.skipped += 1;
            return Ok(false);
        }
        let named = match e.value {
            Staged::Value(v) => {
                storage.insert(self.txn, e.key, v, crc32fast::hash(v), e.expires_at_ms)?;
                false
            }
            Staged::File(w) => {
                self.txn.insert_file(e.key, w, w.crc, e.expires_at_ms)?;
                true
            }
            Staged::Due => unreachable!("skipped above"),
        };
        // The row just inserted: its rowid is its `seq`.
        let seq = self.txn.conn().last_insert_rowid();
        self.first_stored.get_or_insert(seq);
        if e.hits > 0 || e.set_at_ms.is_some() {
            let hits = e.hits.min(i64::MAX as u64) as i64;
            self.txn
                .conn()
                .prepare_cached(table::SET_IMPORTED)
                .and_then(|mut s| s.execute(params![hits, seq, e.set_at_ms]))
                .ctx("storing an entry's hits")?;
        }
        self.summary.entries += 1;
        Ok(named)
    }

    fn merge_lifetime(&mut self, counters: &LifetimeStats) -> Result<()> {
        self.txn.merge_lifetime(counters);
        lifetime::merge_since(self.txn.conn(), counters)
    }

    /// Evicts by the policy down to `max_size`, once every entry is stored.
    fn finish(self, storage: &Storage) -> Result<TransferSummary> {
        let before = self.txn.tally.evictions;
        self.txn
            .evict_to_fit(storage.eviction_policy(), storage.max_size() as i64, 0)?;
        Ok(TransferSummary {
            evicted: self.txn.tally.evictions - before,
            ..self.summary
        })
    }
}

impl Storage {
    /// Calls `visit` with every live entry, in access order (least recently used
    /// first, so that an import keeps the order), from one read of the file. Damaged
    /// entries are left out and counted. The storage is busy meanwhile: `visit` must
    /// not use it; an error from `visit` stops the export.
    pub fn export(
        &self,
        mut visit: impl FnMut(&ExportedEntry<'_>) -> Result<()>,
    ) -> Result<TransferSummary> {
        // This process's buffered hits belong in the counts exported.
        self.flush()?;
        let now = self.now();
        self.with_writer(|conn| {
            let mut summary = TransferSummary::default();
            let mut stmt = conn.prepare(table::EXPORT).ctx("exporting entries")?;
            let mut rows = stmt.query([now]).ctx("exporting entries")?;
            while let Some(row) = rows.next().ctx("exporting entries")? {
                let col = |i| row.get_ref(i).ctx("reading an entry");
                // The columns of table::EXPORT, judged as check judges them (due
                // entries are left out by the query).
                let sound = entry::bookkeeping_sound(
                    col(1)?,
                    col(2)?,
                    col(3)?,
                    col(4)?,
                    col(5)? == ValueRef::Null,
                    col(11)? != ValueRef::Null,
                );
                let (key, hits) = (col(1)?, entry::int(col(4)?));
                // A value kept in a file is read whole, and judged as one in the row.
                let mut file_gone = None;
                let from_file = match entry::in_file(col(11)?, col(7)?, col(6)?) {
                    Some(Some((name, size, crc))) => match self.shared.value_files(false)? {
                        Some(files) => match files.read(&name, size, crc)? {
                            Read::Value(v) => Some(Some(v)),
                            Read::Missing => {
                                file_gone = Some(name.file_name());
                                Some(None)
                            }
                            Read::Damaged => Some(None),
                        },
                        None => Some(None),
                    },
                    Some(None) => Some(None),
                    None => None,
                };
                let named_now = |file: &str| {
                    self.read(|fresh| {
                        fresh
                            .prepare_cached(table::NAMES_FILE)
                            .and_then(|mut st| st.exists([file]))
                            .ctx("looking up a value file")
                    })
                };
                if let (Some(file), ValueRef::Blob(key), true) = (&file_gone, key, sound) {
                    if named_now(file)? {
                        summary.skipped += 1; // removed behind BackLite's back: damage
                        continue;
                    }
                    // Another process overwrote or deleted the entry since this read
                    // began, and removed its file after its commit: no damage. The
                    // key's value now is exported in its place (as a get would find
                    // it; a new entry, so no hits, and no time of set known), or
                    // nothing if it has none. Every such entry was left out as
                    // damaged: most of a cache exported beside a writer of large values.
                    if let Some((value, left)) = self.lookup_by(key, false, false, Own)? {
                        visit(&ExportedEntry {
                            key,
                            value: &value,
                            expires_at_ms: left.map(|d| now.saturating_add(d.as_millis() as i64)),
                            hits: 0,
                            set_at_ms: None,
                        })?;
                        summary.entries += 1;
                    }
                    continue;
                }
                let live = match &from_file {
                    Some(Some(v)) => {
                        entry::classify(col(6)?, col(7)?, col(8)?, ValueRef::Blob(v), i64::MIN)
                    }
                    Some(None) => State::Damaged,
                    None => entry::classify(col(6)?, col(7)?, col(8)?, col(9)?, i64::MIN),
                };
                let (State::Live { value, deadline }, ValueRef::Blob(key), Some(hits), true) =
                    (live, key, hits, sound)
                else {
                    summary.skipped += 1;
                    continue;
                };
                visit(&ExportedEntry {
                    key,
                    value,
                    expires_at_ms: deadline,
                    hits: hits.max(0) as u64,
                    // Not something check judges: a damaged one is unknown.
                    set_at_ms: entry::int(col(10)?),
                })?;
                summary.entries += 1;
            }
            Ok(summary)
        })
    }

    /// Stores the entries `fill` gives the [`Importer`] in one write transaction, then
    /// evicts by the policy down to `max_size`. If `fill` fails, nothing it gave is
    /// kept. With a file threshold, `fill` runs before the transaction: its entries
    /// are kept aside and the files of its large values written, as a set writes its
    /// file before the write lock, so that other writers wait only for the rows; the
    /// transaction begins once `fill` returns (its entries replace what other writers
    /// stored meanwhile, as if the import were made at its commit). A failure to store
    /// an entry then (a damaged or read-only file, a full disk) is handed to `failed`
    /// with the position [`Importer::at`] gave it, and what that returns is the
    /// import's error.
    pub fn import(
        &self,
        fill: impl FnOnce(&mut Importer<'_, '_, '_>) -> Result<()>,
        failed: impl Fn(Error, u64) -> Error,
    ) -> Result<TransferSummary> {
        // No value kept in a file, or nowhere to stage: straight in.
        let staging = self
            .keeps_files()
            .then(|| Staging::new(self))
            .and_then(|s| s.ok());
        let Some(mut staging) = staging else {
            return self.write(|txn| {
                let mut importer = Importer {
                    storage: self,
                    into: Into::Storing(Storing::new(txn)),
                };
                fill(&mut importer)?;
                match importer.into {
                    Into::Storing(storing) => storing.finish(self),
                    Into::Staging(_) => unreachable!("an importer storing stays so"),
                }
            });
        };
        let mut importer = Importer {
            storage: self,
            into: Into::Staging(&mut staging),
        };
        if let Err(e) = fill(&mut importer) {
            staging.discard(self, None);
            return Err(e);
        }
        let mut named = None;
        let done = self.write(|txn| {
            let mut storing = Storing::new(txn);
            for (counters, origin) in staging.lifetimes() {
                storing
                    .merge_lifetime(counters)
                    .map_err(|e| failed(e, *origin))?;
            }
            named = Some(staging.replay(|e| {
                let origin = e.origin;
                storing.store(self, e).map_err(|e| failed(e, origin))
            })?);
            storing.finish(self)
        });
        staging.discard(self, named.as_deref().filter(|_| done.is_ok()));
        done
    }
}

impl<'t, 'c> Storing<'t, 'c> {
    fn new(txn: &'t mut Txn<'c>) -> Self {
        Storing {
            txn,
            summary: TransferSummary::default(),
            first_stored: None,
        }
    }
}
