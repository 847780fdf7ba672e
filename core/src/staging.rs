//! An import's entries, kept aside until its transaction stores them. The files of
//! its large values are written first, before the write lock, as a set writes its
//! file: other writers wait for the rows only, not for those bytes. Until the commit
//! no row names those files; the folder's mark keeps every sweep off them, and a
//! crash leaves them as orphans, which check and the sweep remove.

use crate::error::{Error, Result, SqliteContext};
use crate::expiration::is_due;
use crate::lifetime::LifetimeStats;
use crate::options::MAX_VALUE_SIZE;
use crate::storage::Storage;
use crate::value_files::Written;
use rusqlite::{params, Connection};
use std::fs::File;

/// What a staged entry stores.
pub(crate) enum Staged<'a> {
    /// A value kept in the database, or one whose file is written inside the
    /// transaction (the folder's mark could not be had).
    Value(&'a [u8]),
    /// A value whose file was written ahead.
    File(&'a Written),
    /// Nothing: the entry was already due when given; it only removes the older one.
    Due,
}

/// An entry as [`Staging::replay`] hands it back.
pub(crate) struct StagedEntry<'a> {
    pub key: &'a [u8],
    pub value: Staged<'a>,
    pub expires_at_ms: Option<i64>,
    pub hits: u64,
    pub set_at_ms: Option<i64>,
    /// The caller's position of the entry ([`Staging::at`]).
    pub origin: u64,
}

/// The entries given so far, in order, in a private temporary database (SQLite's
/// own temporary file, in its temporary folder, gone when closed however the process
/// ends), so that a dump of any size is staged in bounded memory.
pub(crate) struct Staging {
    db: Connection,
    /// The files written ahead, in the order given; the rows refer to them by index.
    files: Vec<Written>,
    lifetimes: Vec<(LifetimeStats, u64)>,
    /// The caller's position of what it gives next ([`Staging::at`]).
    origin: u64,
    /// The folder's mark, held from before the first file let go until the files are
    /// named by a commit or removed (fields drop in order: after `files`).
    mark: Option<File>,
    /// The mark was asked for and could not be had.
    unmarked: bool,
}

const SCHEMA: &str = "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
    CREATE TABLE staged (key BLOB NOT NULL, value BLOB, file INTEGER,
        expires_at INTEGER, hits INTEGER NOT NULL, set_at INTEGER, origin INTEGER NOT NULL);";

impl Staging {
    pub(crate) fn new() -> Result<Staging> {
        let db = Connection::open("").ctx("making the import's staging database")?;
        db.execute_batch(SCHEMA)
            .ctx("making the import's staging database")?;
        Ok(Staging {
            db,
            files: Vec::new(),
            lifetimes: Vec::new(),
            origin: 0,
            mark: None,
            unmarked: false,
        })
    }

    /// Sets the caller's position (a line number) of what it gives next, handed back
    /// with a failure to store it.
    pub(crate) fn at(&mut self, origin: u64) {
        self.origin = origin;
    }

    /// Keeps the entry `e` of `value` aside (its origin is [`Staging::at`]'s), writing
    /// the value's file now if it is kept in one. The caller has refused a value that
    /// is too large.
    pub(crate) fn put(
        &mut self,
        storage: &Storage,
        value: &[u8],
        e: StagedEntry<'_>,
    ) -> Result<()> {
        let StagedEntry {
            key,
            expires_at_ms,
            hits,
            set_at_ms,
            ..
        } = e;
        let len = value.len() as u64;
        let due = is_due(expires_at_ms, storage.now());
        let mut file = None;
        if !due && storage.in_file(len) {
            if self.mark.is_none() && !self.unmarked {
                self.mark = storage.writing_mark();
                self.unmarked = self.mark.is_none();
            }
            // Without the mark a file let go could be swept before the commit: the
            // value is written inside the transaction instead, unless SQLite cannot
            // hold it (then its file stays locked until the end).
            if self.mark.is_some() || len > MAX_VALUE_SIZE {
                let mut written = storage.write_value_file(value)?;
                if self.mark.is_some() {
                    written.let_go();
                }
                file = Some(self.files.len() as i64);
                self.files.push(written);
            }
        }
        let kept = (!due && file.is_none()).then_some(value);
        self.db
            .prepare_cached(
                "INSERT INTO staged (key, value, file, expires_at, hits, set_at, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                let hits = hits.min(i64::MAX as u64) as i64;
                let origin = self.origin as i64;
                s.execute(params![
                    key,
                    kept,
                    file,
                    expires_at_ms,
                    hits,
                    set_at_ms,
                    origin
                ])
            })
            .ctx("staging an entry")?;
        Ok(())
    }

    /// Keeps lifetime counters of another file aside, to be merged with the entries.
    pub(crate) fn merge_lifetime(&mut self, counters: &LifetimeStats) {
        self.lifetimes.push((*counters, self.origin));
    }

    /// The lifetime counters given, each with its origin.
    pub(crate) fn lifetimes(&self) -> &[(LifetimeStats, u64)] {
        &self.lifetimes
    }

    /// Hands every entry to `store`, in the order given; `store` says whether a row
    /// now names the entry's file. Returns, for each file written ahead, whether one does.
    pub(crate) fn replay(
        &self,
        mut store: impl FnMut(StagedEntry<'_>) -> Result<bool>,
    ) -> Result<Vec<bool>> {
        let mut named = vec![false; self.files.len()];
        let mut stmt = self
            .db
            .prepare(
                "SELECT key, value, file, expires_at, hits, set_at, origin
                 FROM staged ORDER BY rowid",
            )
            .ctx("reading the staged entries")?;
        let mut rows = stmt.query([]).ctx("reading the staged entries")?;
        while let Some(row) = rows.next().ctx("reading the staged entries")? {
            let read = |e| Error::sqlite("reading a staged entry", e);
            let key: Vec<u8> = row.get(0).map_err(read)?;
            let value: Option<Vec<u8>> = row.get(1).map_err(read)?;
            let file: Option<i64> = row.get(2).map_err(read)?;
            let value = match (&value, file) {
                (_, Some(n)) => Staged::File(&self.files[n as usize]),
                (Some(v), None) => Staged::Value(v),
                (None, None) => Staged::Due,
            };
            let hits: i64 = row.get(4).map_err(read)?;
            let entry = StagedEntry {
                key: &key,
                value,
                expires_at_ms: row.get(3).map_err(read)?,
                hits: hits.max(0) as u64,
                set_at_ms: row.get(5).map_err(read)?,
                origin: row.get::<_, i64>(6).map_err(read)? as u64,
            };
            if store(entry)? {
                if let Some(n) = file {
                    named[n as usize] = true;
                }
            }
        }
        Ok(named)
    }

    /// Removes every file written ahead that no committed row names: `named` as
    /// [`Staging::replay`] returned it, `None` if the transaction did not commit.
    pub(crate) fn discard(&self, storage: &Storage, named: Option<&[bool]>) {
        for (n, written) in self.files.iter().enumerate() {
            if !named.is_some_and(|named| named[n]) {
                storage.discard_file(Some(written));
            }
        }
    }
}
