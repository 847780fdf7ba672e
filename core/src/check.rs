//! Check and repair: verify what no normal operation reads in full, and fix what can
//! be fixed without guessing. Both walk the whole file, by nature.

use crate::counters;
use crate::entry::{self, State};
use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::shared::FileShared;
use crate::storage::Storage;
use crate::table;
use crate::value_files::{Streamed, Swept, ValueFiles, ValueName};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::collections::HashSet;

/// What [`Storage::check`] found (and, with repair, fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// SQLite's `integrity_check` found no damage in the database structure (after a
    /// repair, in what the repair left: a NULL in a NOT NULL column goes with its row).
    pub integrity_ok: bool,
    /// Its first messages when it did not.
    pub integrity_messages: Vec<String>,
    /// Live entries examined.
    pub entries: u64,
    /// Entries whose row is damaged: a value that is missing or fails its checksum, a
    /// size that is not the value's length, or a column of the wrong type or NULL.
    pub damaged: u64,
    /// Values no entry refers to.
    pub orphan_values: u64,
    /// `count` and `total_size` as recorded in the file before the check, less the
    /// expired entries (which a check leaves out). Both `u64::MAX` when the counters
    /// themselves are damaged (see [`CheckReport::counters_damaged`]).
    pub recorded_count: u64,
    /// `total_size` as the file recorded it before the check.
    pub recorded_total_size: u64,
    /// `count` and `total_size` of the entries that passed.
    pub actual_count: u64,
    /// `total_size` of the entries that passed.
    pub actual_total_size: u64,
    /// Whether repair changed anything (removed entries or values, rewrote counters).
    pub repaired: bool,
}

impl CheckReport {
    /// The file's counters were damaged (one was not a non-negative integer, or was
    /// absurdly large, or the clock was behind the newest entry): every write fails with
    /// [`ErrorKind::Corrupt`] until a check with repair rewrites them.
    pub fn counters_damaged(&self) -> bool {
        self.recorded_count == u64::MAX && self.recorded_total_size == u64::MAX
    }

    /// Nothing wrong was found (or everything wrong was repaired).
    pub fn healthy(&self) -> bool {
        self.integrity_ok
            && (self.repaired
                || (self.damaged == 0
                    && self.orphan_values == 0
                    && self.recorded_count == self.actual_count
                    && self.recorded_total_size == self.actual_total_size))
    }
}

impl Storage {
    /// `check`, answering a file whose structure SQLite cannot read at all
    /// ([`ErrorKind::Corrupt`]) with its report rather than an error: `integrity_ok`
    /// false, nothing repaired, every count 0 (none could be made). That is the check's
    /// finding (a damaged file: delete it), not a failure to make one; the C ABI's
    /// `backlite_storage_check` and the bindings answer so.
    pub fn check_or_report(&self, repair: bool) -> Result<CheckReport> {
        match self.check(repair) {
            Err(e) if e.kind() == ErrorKind::Corrupt => Ok(CheckReport {
                integrity_ok: false,
                integrity_messages: vec![e.message().to_string()],
                ..CheckReport::default()
            }),
            other => other,
        }
    }

    /// Verifies SQLite's integrity, every value's checksum, and the counters. With
    /// `repair`, removes damaged entries and orphan values and rewrites the counters,
    /// in the same transaction. Damage SQLite itself reports cannot be repaired here:
    /// delete the file (it is a cache). Without `repair` it only reads, so a file this
    /// process cannot write can be checked. Expired entries are left out either way.
    /// An orphan value file repair cannot remove (in a folder of values this process may
    /// not write) makes it [`ErrorKind::Io`], once what it repaired is committed.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        self.write_waiting_fills();
        if !repair {
            let now = self.now();
            let mut report = self.read(|conn| {
                // One snapshot for the counters and the entries.
                let _snapshot = conn.unchecked_transaction().ctx("beginning a read")?;
                self.examine_snapshot(conn, now)
            })?;
            report.orphan_values += self.count_orphans()?;
            return Ok(report);
        }
        // A write cannot begin on damaged counters: they are rewritten first.
        let counters_were_damaged = self.with_writer(counters::repair)?;
        self.sweep_unfinished_folders();
        let (report, swept) = self.write(|t| {
            // The write began by purging the due entries: its counters are the live ones.
            let files = self.shared.value_files(false)?;
            let recorded = (!counters_were_damaged).then_some((t.count, t.total_size));
            let (mut report, damaged_rows) = examine(t.conn(), files, recorded, t.now)?;
            self.files_still_here(&damaged_rows)?;
            // Files no row names. A set writes its file before it takes the write lock
            // and holds the file's own lock until its row commits: a file whose lock
            // can be taken is an orphan, of a write that failed or was killed.
            let to_sweep = self.shared.folder_to_sweep()?;
            let swept = sweep(&self.shared, t.conn(), to_sweep, true, &t.tally.files)?;
            let orphan_files = swept.removed;
            report.orphan_values += orphan_files;
            if !report.healthy() || orphan_files > 0 {
                for (seq, key, value_id, file) in damaged_rows {
                    t.remove_damaged_row(key.as_deref(), seq, value_id, file)?;
                }
                t.conn()
                    .execute(table::DELETE_ORPHANS, [])
                    .ctx("removing orphan values")?;
                t.set_counters(report.actual_count as i64, report.actual_total_size as i64);
                report.repaired = true;
                if !report.integrity_ok {
                    // Some of it may have been in the rows just removed (a NULL in a NOT
                    // NULL column): what is left is what repair could not fix.
                    report.integrity_messages = integrity_messages(t.conn())?;
                    report.integrity_ok = report.integrity_messages.is_empty();
                }
            }
            Ok((report, swept))
        })?;
        // Orphans it could not remove (a folder its user may not write) are not
        // repaired: a report that said healthy while every check without repair went
        // on finding them hid them. What it did repair is committed.
        match swept.why_left {
            Some(why) => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "repairing: {} orphan value file(s) could not be removed ({why})",
                    swept.left
                ),
            )),
            None => Ok(report),
        }
    }

    /// `check` without repair, on `conn` inside its read snapshot.
    fn examine_snapshot(&self, conn: &Connection, now: i64) -> Result<CheckReport> {
        let live = match counters::sound(conn)? {
            true => Some(crate::txn::live_counters(conn, now)?),
            false => None,
        };
        let files = self.shared.value_files(false)?;
        let (mut report, damaged_rows) = examine(conn, files, live, now)?;
        self.files_still_here(&damaged_rows)?;
        // A write that committed after the snapshot began (a delete, an overwrite, an
        // eviction in another process) removes the files of the rows it removed: such
        // a file is missing, but no row names it any more. As of the snapshot, its
        // entry was sound (a named file is never changed), so it is counted as one.
        // (Without value files, as in memory, where a read locks the one connection.)
        let in_files = damaged_rows.into_iter().filter(|_| files.is_some());
        for (seq, _, _, file) in in_files {
            let Some(file) = file else { continue };
            let named_now = self.read(|fresh| {
                fresh
                    .prepare_cached(table::NAMES_FILE)
                    .and_then(|mut st| st.exists([&file]))
                    .ctx("looking up a value file")
            })?;
            if named_now || files.is_some_and(|f| f.dir().join(&file).exists()) {
                continue;
            }
            let size: Option<i64> = conn
                .query_row("SELECT size FROM entries WHERE seq = ?1", [seq], |r| {
                    Ok(entry::int(r.get_ref(0)?))
                })
                .ctx("reading an entry")?;
            if let Some(size) = size.filter(|&n| n >= 0) {
                report.damaged -= 1;
                report.actual_count += 1;
                report.actual_total_size += size as u64;
            }
        }
        Ok(report)
    }

    /// The orphan value files `check` without repair reports. Looked for after its
    /// snapshot, each name in the file as it is then: a batch or an import that
    /// committed since the snapshot began names files the snapshot does not. None while
    /// a write writes files no row names until it commits (a batch past the files it
    /// holds open, an import: `ValueFiles::inside_writes`): they would be taken
    /// for orphans once older than the grace, for a batch or an import running longer.
    /// A transaction that begins after this look writes files younger than `now`.
    fn count_orphans(&self) -> Result<u64> {
        let Some(files) = self.shared.folder_to_sweep()? else {
            return Ok(0);
        };
        let now = std::time::SystemTime::now();
        if files.inside_writes() {
            return Ok(0);
        }
        let swept =
            self.read(|fresh| sweep_at(&self.shared, fresh, Some(files), false, &[], now))?;
        Ok(swept.removed)
    }

    /// An error if a damaged row names a value file and the file's name no longer
    /// leads to it (moved, deleted or replaced while open): its value file may have
    /// moved with it, whole, so no such row is damaged as far as this handle can
    /// tell, and none may be removed (`FileShared::still_here`).
    fn files_still_here(&self, damaged_rows: &[DamagedRow]) -> Result<()> {
        match damaged_rows.iter().any(|row| row.3.is_some()) {
            true => self.shared.still_here(),
            false => Ok(()),
        }
    }

    /// Rebuilds the file to give free pages back to the file system, and truncates the
    /// write-ahead log. Value files no row names (orphans of writes that failed or
    /// were killed; not the locked files of sets in flight) are removed first: like
    /// the rebuild, that walks everything.
    pub fn vacuum(&self) -> Result<()> {
        // Its first steps (the sweep, the hits waiting) would otherwise fail in their
        // own words, e.g. "recording hits" for a vacuum of a file that cannot be written.
        self.vacuum_steps().map_err(|e| e.within("vacuuming"))
    }

    fn vacuum_steps(&self) -> Result<()> {
        self.sweep_unfinished_folders();
        if let Some(files) = self.shared.folder_to_sweep()? {
            self.write(|t| sweep(&self.shared, t.conn(), Some(files), true, &t.tally.files))?;
        }
        self.flush()?;
        self.with_writer(|conn| conn.execute_batch("VACUUM").ctx("rebuilding the file"))?;
        // Truncating the log waits for every reader still in it. SQLite's busy handler
        // would wait holding the log's write lock (a truncating checkpoint holds off new
        // writers while it waits), so every writer of every process waited with it, and
        // failed BUSY after its own busy timeout: for a reader that never leaves, such
        // as one this thread holds open, the whole busy timeout. So each try waits for
        // nothing, and the write lock and this process's turn are free between tries:
        // writes go on. (A checkpoint already running, the hit writer's after its write,
        // makes a try BUSY at once too.) Within the busy timeout, then BUSY.
        let patience = self.pool.busy_timeout();
        let since = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            let busy = self.with_writer(|conn| {
                let tried = crate::interrupt::without_waiting(|| {
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                        r.get::<_, i64>(0)
                    })
                });
                match tried {
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::DatabaseBusy =>
                    {
                        Ok(1)
                    }
                    tried => tried.ctx("truncating the write-ahead log"),
                }
            })?;
            if busy == 0 {
                return Ok(());
            }
            if since.elapsed() >= patience || crate::interrupt::interrupted() {
                return Err(Error::new(
                    ErrorKind::Busy,
                    "vacuumed, but readers kept the write-ahead log from being truncated",
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// A damaged row: `(seq, key if it is one, value_id if it is one, the name of its
/// file if it names one of ours)`.
type DamagedRow = (i64, Option<Vec<u8>>, Option<i64>, Option<String>);

/// How long a check that only reads leaves an unreferenced value file out of its
/// count: a writer writes its file before its transaction commits.
pub(crate) const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// With `remove` (the caller holds the write lock), removes our files in `files`
/// that no row names and no writer holds locked (value_files.rs); without, counts
/// those older than [`ORPHAN_GRACE`]. Anything else in the folder is left alone.
/// `removed_here`: the files of rows the caller's transaction removed (entries it
/// purged as due), which go once it commits: no orphans; nor are those of rows other
/// writes of this process removed, being unlinked (`FileShared::is_unlinking`), nor
/// those another process's writes removed and hold locked until they unlink them.
/// What it found: without `remove`, the count is in `removed`.
pub(crate) fn sweep(
    shared: &FileShared,
    conn: &Connection,
    files: Option<&ValueFiles>,
    remove: bool,
    removed_here: &[String],
) -> Result<Swept> {
    let now = std::time::SystemTime::now();
    sweep_at(shared, conn, files, remove, removed_here, now)
}

/// [`sweep`], the ages of the files taken at `now`.
fn sweep_at(
    shared: &FileShared,
    conn: &Connection,
    files: Option<&ValueFiles>,
    remove: bool,
    removed_here: &[String],
    now: std::time::SystemTime,
) -> Result<Swept> {
    let Some(files) = files else {
        return Ok(Swept::default());
    };
    let mut stmt = conn
        .prepare_cached(table::NAMES_FILE)
        .ctx("looking for orphan files")?;
    let removed_here: HashSet<&str> = removed_here.iter().map(String::as_str).collect();
    let referenced = |name: &ValueName| {
        let file = name.file_name();
        removed_here.contains(file.as_str())
            || shared.is_unlinking(&file)
            || stmt.exists([file]).unwrap_or(true)
    };
    if remove {
        // A batch writing files ahead of its transaction, closed once written and named
        // by no row until it commits, holds the folder's mark: such a file looks like
        // an orphan however young, so while one does nothing is swept (the orphans go
        // with a later sweep). Held throughout, so that no batch begins writing so
        // meanwhile. A marker that cannot be opened is no mark: the sweep then finds
        // the folder not ours (IO, nothing removed) or gone, as it did before the mark.
        let _alone = match files.alone() {
            Ok(Some(held)) => Some(held),
            Ok(None) => return Ok(Swept::default()),
            Err(_) => None,
        };
        files.sweep(referenced, std::time::Duration::ZERO, now)
    } else {
        Ok(Swept {
            removed: files.count_orphans(referenced, ORPHAN_GRACE, now)?,
            ..Swept::default()
        })
    }
}

/// Folder entries the lazy sweep looks at per open: bounded work on any folder.
pub(crate) const LAZY_SWEEP_BATCH: usize = 64;

/// How old an unreferenced file of ours must be before the lazy sweep removes it.
///
/// The sweep holds no write lock, so a file it finds may belong to a set in flight in
/// another process: a value file being written, or one complete whose row is about to
/// commit. Neither may go, and neither does: its writer holds
/// the file's lock until its row commits, and the sweep takes only a file whose lock
/// it can take, asking again with the lock held whether a row names it
/// (value_files.rs). The files written inside a write transaction (a batch, an
/// import), unlocked once written and named when it commits, are kept by the sweep
/// running only while no write is open (`Storage::sweep_lazily`). The age guards a
/// file system whose locks do not work (some network file systems): a set in flight
/// has modified its file within the duration of one set plus its wait for the write
/// lock, which is seconds even for gigabytes. A clock stepped back only makes files look younger, which keeps
/// them.
pub(crate) const LAZY_SWEEP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

impl Storage {
    /// Removes the folders of values that processes killed while they built them left
    /// beside the cache file (value_files.rs, `sweep_unfinished_folders`), once
    /// [`LAZY_SWEEP_AGE`] old: a check with repair and a vacuum, which list the folder
    /// the cache file is in (an open does not: it may hold any number of files).
    fn sweep_unfinished_folders(&self) {
        if let Some(name) = self.shared.name_to_sweep() {
            let now = std::time::SystemTime::now();
            crate::value_files::sweep_unfinished_folders(name, LAZY_SWEEP_AGE, now);
        }
    }

    /// Removes the files in the folder of values of a cache this open created: a
    /// folder left by the cache that was deleted (`rm cache.db` leaves `cache.db.values/`)
    /// or emptied at this path holds files no row of the new one names. A check called
    /// them orphans at once (an unhealthy new cache), and the lazy sweep left them, and
    /// their disk space, for an hour. As a vacuum's sweep, under the write lock: the
    /// files of sets in flight into the new cache stay. Best effort, as the lazy sweep.
    pub(crate) fn sweep_left_folder(&self) {
        if let Ok(Some(files)) = self.shared.folder_to_sweep() {
            let _ =
                self.write(|t| sweep(&self.shared, t.conn(), Some(files), true, &t.tally.files));
        }
    }

    /// Removes orphan value files (of writers killed or failed mid-set) a batch at a
    /// time: at most [`LAZY_SWEEP_BATCH`] entries of the folder are looked at, from
    /// where the last sweep stopped. Best effort: a cache this process cannot write,
    /// or any failure, leaves the orphans to a later open, `check` or `vacuum`.
    ///
    /// Only while no write is open on the file and no batch writes files ahead of its
    /// own: an import (or a batch that could not write them ahead) writes its files
    /// inside its transaction, a batch past the files it holds open ahead of it, and
    /// each lets their locks go once written (one open file per value would run a
    /// batch of thousands out of descriptors), so until it commits, an unlocked file
    /// that no row names may be one of its own. The age alone did not keep them: an
    /// import of a large dump runs for hours, and an open meanwhile removed its first
    /// files, whose entries it then committed without them. A write that begins after
    /// this look writes files younger than the sweep takes, or inside its transaction.
    pub(crate) fn sweep_lazily(&self) {
        let Ok(Some(files)) = self.shared.folder_to_sweep() else {
            return;
        };
        if !crate::transact::no_write_open(&self.pool, &self.shared) {
            return;
        }
        // Nor while a batch writes files ahead of its transaction (see `sweep_at`).
        let Ok(Some(_alone)) = files.alone() else {
            return;
        };
        let _ = self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(table::NAMES_FILE)
                .ctx("looking for orphan files")?;
            let referenced = |name: &ValueName| {
                let file = name.file_name();
                self.shared.is_unlinking(&file) || stmt.exists([file]).unwrap_or(true)
            };
            let now = std::time::SystemTime::now();
            files.sweep_some(referenced, LAZY_SWEEP_AGE, now, LAZY_SWEEP_BATCH)
        });
    }
}

/// Everything `check` verifies, read from `conn`: the report (with the counters
/// `recorded`, net of the entries due at `now`; `None`: damaged) and the damaged rows.
fn examine(
    conn: &Connection,
    files: Option<&ValueFiles>,
    recorded: Option<(i64, i64)>,
    now: i64,
) -> Result<(CheckReport, Vec<DamagedRow>)> {
    let mut report = CheckReport::default();
    report.integrity_messages = integrity_messages(conn)?;
    report.integrity_ok = report.integrity_messages.is_empty();
    let (count, total_size) =
        recorded.map_or((u64::MAX, u64::MAX), |(n, size)| (n as u64, size as u64));
    report.recorded_count = count;
    report.recorded_total_size = total_size;
    // (seq, key if it is one, value_id if it is one) of each damaged row.
    let mut damaged_rows = Vec::new();
    {
        let mut stmt = conn.prepare(table::EXAMINE).ctx("reading every entry")?;
        let mut rows = stmt.query([now]).ctx("reading every entry")?;
        while let Some(row) = rows.next().ctx("reading every entry")? {
            report.entries += 1;
            let col = |i| row.get_ref(i).ctx("reading an entry");
            let seq: i64 = row.get(0).ctx("reading an entry")?;
            let key = col(1)?.as_blob().ok();
            let value_id = col(2)?;
            let sound = entry::bookkeeping_sound(
                col(1)?,
                value_id,
                col(3)?,
                col(4)?,
                col(5)? == ValueRef::Null,
                col(11)? != ValueRef::Null,
            );
            // Due entries are left out by the query.
            let in_file = entry::in_file(col(11)?, col(7)?, col(6)?);
            let live = match in_file {
                // Kept in a file: read through to check its CRC, in bounded memory.
                Some(Some((ref name, size, crc))) if sound && col(9)? == ValueRef::Null => {
                    let streamed = match files {
                        Some(files) => files.read_chunks(name, size, crc, |_| true)?,
                        None => Streamed::Missing,
                    };
                    (streamed == Streamed::Done && entry::deadline(col(8)?).is_some())
                        .then_some(size)
                }
                Some(_) => None,
                None => match entry::classify(col(6)?, col(7)?, col(8)?, col(9)?, i64::MIN) {
                    State::Live { value, .. } if sound => Some(value.len() as u64),
                    _ => None,
                },
            };
            match live {
                Some(size) => {
                    report.actual_count += 1;
                    report.actual_total_size += size;
                }
                None => {
                    report.damaged += 1;
                    let file = in_file.flatten().map(|(name, _, _)| name.file_name());
                    damaged_rows.push((seq, key.map(<[u8]>::to_vec), entry::int(value_id), file));
                }
            }
        }
    }
    report.orphan_values = conn
        .query_row(table::COUNT_ORPHANS, [], |r| r.get::<_, i64>(0))
        .ctx("looking for orphan values")? as u64;
    Ok((report, damaged_rows))
}

/// What SQLite's `integrity_check` reports (its first messages), or nothing when the
/// database structure is sound.
fn integrity_messages(conn: &Connection) -> Result<Vec<String>> {
    let messages: Vec<String> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .ctx("checking the database structure")?;
    Ok(if messages.len() == 1 && messages[0] == "ok" {
        Vec::new()
    } else {
        messages
    })
}

#[cfg(test)]
mod tests {
    use crate::{Expiration, Options, Storage};

    /// A check that only reads, while another write deletes an entry kept in a file
    /// after the check's snapshot began: the file is gone, and so is its row, so the
    /// entry (sound in the snapshot) is not reported damaged.
    #[test]
    fn a_file_removed_by_a_write_after_the_snapshot_is_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = Options::new();
        options.set_file_threshold(Some(10)).unwrap();
        let s = Storage::open(dir.path().join("c.db"), &options).unwrap();
        s.set(b"k", &[7u8; 100], Expiration::Never).unwrap();
        s.set(b"other", &[8u8; 100], Expiration::Never).unwrap();
        let report = s
            .read(|conn| {
                let _snapshot = conn.unchecked_transaction().unwrap();
                let n: i64 = conn
                    .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(n, 2);
                s.delete(b"k").unwrap();
                s.examine_snapshot(conn, s.now())
            })
            .unwrap();
        assert_eq!((report.damaged, report.actual_count), (0, 2));
        assert!(report.healthy(), "{report:?}");
    }
}
