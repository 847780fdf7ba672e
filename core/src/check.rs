//! Check and repair: verify what no normal operation reads in full, and fix what can
//! be fixed without guessing. Both walk the whole file, by nature.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::storage::Storage;

/// What [`Storage::check`] found (and, with repair, fixed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// SQLite's `integrity_check` found no damage in the database structure.
    pub integrity_ok: bool,
    /// Its first messages when it did not.
    pub integrity_messages: Vec<String>,
    /// Live entries examined.
    pub entries: u64,
    /// Entries whose value fails its checksum or is missing.
    pub damaged: u64,
    /// Values no entry refers to.
    pub orphan_values: u64,
    /// `count` and `total_size` as recorded in the file before the check.
    pub recorded_count: u64,
    pub recorded_total_size: u64,
    /// `count` and `total_size` of the entries that passed.
    pub actual_count: u64,
    pub actual_total_size: u64,
    /// Whether repair changed anything (removed entries or values, rewrote counters).
    pub repaired: bool,
}

impl CheckReport {
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
    /// Verifies SQLite's integrity, every value's checksum, and the counters. With
    /// `repair`, removes damaged entries and orphan values and rewrites the counters,
    /// in the same transaction. Damage SQLite itself reports cannot be repaired here:
    /// delete the file (it is a cache).
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        self.write(|t| {
            let conn = t.conn();
            let mut report = CheckReport::default();
            let messages: Vec<String> = conn
                .prepare("PRAGMA integrity_check(20)")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .ctx("checking the database structure")?;
            report.integrity_ok = messages.len() == 1 && messages[0] == "ok";
            if !report.integrity_ok {
                report.integrity_messages = messages;
            }
            report.recorded_count = t.count as u64;
            report.recorded_total_size = t.total_size as u64;
            let mut damaged_keys = Vec::new();
            {
                let mut stmt = conn
                    .prepare(
                        "SELECT e.key, e.size, e.crc, coalesce(e.value, b.value) FROM entries e \
                         LEFT JOIN blobs b ON b.id = e.value_id",
                    )
                    .ctx("reading every entry")?;
                let mut rows = stmt.query([]).ctx("reading every entry")?;
                while let Some(row) = rows.next().ctx("reading every entry")? {
                    report.entries += 1;
                    let key: Vec<u8> = row.get(0).ctx("reading an entry")?;
                    let size: i64 = row.get(1).ctx("reading an entry")?;
                    let crc: i64 = row.get(2).ctx("reading an entry")?;
                    let good = match row.get_ref(3).ctx("reading an entry")?.as_blob_or_null() {
                        Ok(Some(v)) => v.len() as i64 == size && crc32fast::hash(v) as i64 == crc,
                        _ => false,
                    };
                    if good {
                        report.actual_count += 1;
                        report.actual_total_size += size as u64;
                    } else {
                        report.damaged += 1;
                        damaged_keys.push(key);
                    }
                }
            }
            report.orphan_values = conn
                .query_row(
                    "SELECT count(*) FROM blobs WHERE id NOT IN (SELECT value_id FROM entries WHERE value_id IS NOT NULL)",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ctx("looking for orphan values")? as u64;
            if repair && !report.healthy() {
                for key in &damaged_keys {
                    t.remove_key(key)?;
                }
                t.conn()
                    .execute(
                        "DELETE FROM blobs WHERE id NOT IN (SELECT value_id FROM entries WHERE value_id IS NOT NULL)",
                        [],
                    )
                    .ctx("removing orphan values")?;
                t.set_counters(report.actual_count as i64, report.actual_total_size as i64);
                report.repaired = true;
            }
            Ok(report)
        })
    }

    /// Rebuilds the file to give free pages back to the file system, and truncates the
    /// write-ahead log.
    pub fn vacuum(&self) -> Result<()> {
        self.flush()?;
        self.with_writer(|conn| {
            conn.execute_batch("VACUUM").ctx("vacuuming")?;
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .ctx("truncating the write-ahead log")?;
            if busy != 0 {
                return Err(Error::new(
                    ErrorKind::Busy,
                    "vacuumed, but readers kept the write-ahead log from being truncated",
                ));
            }
            Ok(())
        })
    }
}
