//! Read-only questions about a cache file that the cache itself never needs to ask:
//! what an operator's `backlite stats` and `backlite keys` show. Nothing here writes,
//! so a read-only file can be inspected, and expired entries not yet removed are left
//! where they are (and not counted).

use crate::entry;
use crate::error::{Result, SqliteContext};
use crate::eviction::EvictionPolicy;
use crate::storage::Storage;
use crate::table;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};
use std::time::Duration;

/// One live entry as `backlite keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key, as stored.
    pub key: Vec<u8>,
    /// The value's length in bytes.
    pub size: u64,
    /// Hits written to the file (buffered hits of running processes come later).
    pub hits: u64,
    /// Time since the entry was set; `None` when the file does not record it.
    pub age: Option<Duration>,
    /// Time left; `None`: never expires.
    pub expires_in: Option<Duration>,
}

/// An index that serves some eviction policies' order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyIndex {
    /// The index name in the file.
    pub name: String,
    /// The policies whose victim query this index serves.
    pub policies: Vec<EvictionPolicy>,
}

/// What `backlite stats` shows about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Live entries, and the sum of their value lengths. `None` when the file's
    /// counters are damaged (not a sound integer: text, a real, NULL, negative or
    /// absurdly large), which `check` with repair recounts: never a made-up figure.
    pub count: Option<u64>,
    /// Sum of the live entries' value lengths; `None` as for `count`.
    pub total_size: Option<u64>,
    /// Entries whose time is up but which no write has removed yet.
    pub expired_waiting: u64,
    /// Bytes of the database file on disk (0 in memory).
    pub file_size: u64,
    /// Bytes of the write-ahead log beside the file (0 when there is none).
    pub wal_size: u64,
    /// Bytes of the value files in the folder beside the file (`<file>.values/`, 0
    /// when there is none): the values kept in files of their own. `None` when a
    /// folder is there whose files cannot be counted (this user may not look into it,
    /// or it is not one BackLite would use): unknown, never a made-up 0.
    pub values_size: Option<u64>,
    /// `user_version`: the schema the file is at.
    pub schema_version: i32,
    /// The version tag the file was last opened with, if any.
    pub version_tag: Option<String>,
    /// The policy indexes the file has (least/most recently used need none).
    pub policy_indexes: Vec<PolicyIndex>,
    /// The live entries at the two ends of the access order: the next victim of
    /// least-recently-used, and that of most-recently-used.
    pub least_recently_used: Option<KeyInfo>,
    /// The entry the most-recently-used policy would evict first.
    pub most_recently_used: Option<KeyInfo>,
    /// For each window asked for, how many live entries expire within it.
    pub expiring_within: Vec<(Duration, u64)>,
}

/// A [`KeyInfo`] from the columns of `table::KEY_INFOS_IN` and the others like it, or
/// `None` for a damaged row (as entry.rs tells one; its checksum is left to lookups
/// and check, which read the value).
fn key_info(row: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<Option<KeyInfo>> {
    let sound = entry::bookkeeping_sound(
        row.get_ref(0)?,
        row.get_ref(5)?,
        row.get_ref(6)?,
        row.get_ref(2)?,
        row.get::<_, bool>(7)?,
        row.get::<_, bool>(11)?,
    ) && entry::int(row.get_ref(9)?).is_some()
        && row.get_ref(10)? == ValueRef::Text(b"blob");
    let (key, size, hits) = (row.get_ref(0)?, row.get_ref(1)?, row.get_ref(2)?);
    let (true, ValueRef::Blob(key), Some(size), Some(hits), Some(deadline)) = (
        sound,
        key,
        entry::size(size, row.get_ref(8)?),
        entry::int(hits),
        entry::deadline(row.get_ref(3)?),
    ) else {
        return Ok(None);
    };
    // Not something check judges: a damaged one is unknown.
    let set_at = entry::int(row.get_ref(4)?);
    Ok(Some(KeyInfo {
        key: key.to_vec(),
        size: size as u64,
        hits: hits.max(0) as u64,
        age: set_at.map(|t| Duration::from_millis(now.saturating_sub(t).max(0) as u64)),
        expires_in: deadline.map(|t| Duration::from_millis(t.saturating_sub(now).max(0) as u64)),
    }))
}

/// A count or sum that a damaged row may have made a real number (SQLite's `sum` of a
/// text size is real).
fn number(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Storage {
    /// Counts, sizes, schema and the ends of the access order, read without writing.
    /// `windows`: report how many entries expire within each of these from now.
    pub fn inspect(&self, windows: &[Duration]) -> Result<FileInfo> {
        let now = self.now();
        let (file_size, wal_size) = match self.path() {
            Some(path) => {
                let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                // Beside the file a link leads to, where SQLite makes it.
                let mut wal = self.shared.name.as_os_str().to_owned();
                wal.push("-wal");
                (len(path), len(std::path::Path::new(&wal)))
            }
            None => (0, 0),
        };
        // A folder that cannot be counted is not a reason to withhold the other
        // figures, nor one to report it empty.
        let values_size = match self.shared.value_files(false) {
            Ok(Some(files)) => files.bytes().ok(),
            Ok(None) => Some(0),
            Err(_) => None,
        };
        self.with_writer(|conn| {
            // One read transaction, so that every figure is of the same moment.
            let tx = conn.unchecked_transaction().ctx("reading the file")?;
            // A damaged counter is read as what it is, as backlite_storage_stats reads it
            // (CORRUPT there): not a type error, nor a figure of its own.
            let (count, total_size, version_tag, due, due_size): (
                Option<i64>,
                Option<i64>,
                Option<String>,
                i64,
                i64,
            ) = tx
                .prepare_cached(table::COUNTERS_AND_DUE)
                .and_then(|mut s| {
                    s.query_row([now], |r| {
                        let sound = |i| r.get_ref(i).map(crate::counters::sound_value);
                        let due_size = number(r.get_ref(4)?);
                        Ok((sound(0)?, sound(1)?, r.get(2)?, r.get(3)?, due_size))
                    })
                })
                .ctx("reading the cache counters")?;
            let schema_version: i32 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .ctx("reading the schema version")?;
            let names: Vec<String> = tx
                .prepare_cached(table::INDEX_NAMES)
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .ctx("reading the schema")?;
            let policy_indexes = names
                .into_iter()
                .filter_map(|name| {
                    let policies: Vec<EvictionPolicy> = EvictionPolicy::ALL
                        .into_iter()
                        .filter(|&p| table::policy_index(p).is_some_and(|(n, _)| n == name))
                        .collect();
                    (!policies.is_empty()).then_some(PolicyIndex { name, policies })
                })
                .collect();
            let mut expiring_within = Vec::with_capacity(windows.len());
            for &w in windows {
                let n: i64 = tx
                    .prepare_cached(table::EXPIRING_BETWEEN)
                    .and_then(|mut s| {
                        s.query_row(params![now, now.saturating_add(ms(w))], |r| r.get(0))
                    })
                    .ctx("counting entries that expire soon")?;
                expiring_within.push((w, n as u64));
            }
            let least_recently_used = end_of_access_order(&tx, now, table::KEY_INFOS_OLDEST_FIRST)?;
            let most_recently_used = end_of_access_order(&tx, now, table::KEY_INFOS_NEWEST_FIRST)?;
            Ok(FileInfo {
                count: count.map(|n| (n - due).max(0) as u64),
                total_size: total_size.map(|n| (n - due_size).max(0) as u64),
                expired_waiting: due as u64,
                file_size,
                wal_size,
                values_size,
                schema_version,
                version_tag,
                policy_indexes,
                least_recently_used,
                most_recently_used,
                expiring_within,
            })
        })
    }

    /// Calls `visit` with every live entry whose key starts with `prefix`, in key order,
    /// in one read transaction; `visit` returns false to stop. The storage is busy
    /// meanwhile: `visit` must not use it.
    pub fn key_infos(&self, prefix: &[u8], visit: impl FnMut(KeyInfo) -> bool) -> Result<()> {
        self.key_infos_after(prefix, None, visit)
    }

    /// [`Storage::key_infos`], from the first key after `after` (`None`: from the
    /// first): a listing read a page at a time, each in a read transaction of its own,
    /// so that a reader that is slow to take the pages (a pager, a pipe to another
    /// host) holds none while it waits, and a running program's write-ahead log can be
    /// checkpointed meanwhile.
    pub fn key_infos_after(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut visit: impl FnMut(KeyInfo) -> bool,
    ) -> Result<()> {
        let now = self.now();
        let start = walk_start(prefix, after);
        self.with_writer(|conn| {
            let upper = prefix_end(prefix);
            let sql = match upper {
                Some(_) => table::KEY_INFOS_IN,
                None => table::KEY_INFOS_FROM,
            };
            let mut stmt = conn.prepare(sql).ctx("listing keys")?;
            let mut rows = match &upper {
                Some(upper) => stmt.query(params![start, now, upper]),
                None => stmt.query(params![start, now]),
            }
            .ctx("listing keys")?;
            while let Some(row) = rows.next().ctx("listing keys")? {
                // A damaged row is left out, as a lookup of its key would miss.
                let Some(info) = key_info(row, now).ctx("reading an entry")? else {
                    continue;
                };
                if !visit(info) {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// The first live entry that is not damaged in access order (`seq`, the table's own
/// order) from one end, as `sql` (`table::KEY_INFOS_OLDEST_FIRST` or `NEWEST_FIRST`)
/// lists them: the first row, unless it is damaged.
fn end_of_access_order(conn: &Connection, now: i64, sql: &str) -> Result<Option<KeyInfo>> {
    let what = "reading the ends of the access order";
    let mut stmt = conn.prepare_cached(sql).ctx(what)?;
    let mut rows = stmt.query([now]).ctx(what)?;
    while let Some(row) = rows.next().ctx(what)? {
        if let Some(info) = key_info(row, now).ctx(what)? {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// The smallest key a walk of the keys that start with `prefix`, after `after`, may
/// list: keys are compared as bytes, so the first key after `after` is `after` and a 0.
fn walk_start(prefix: &[u8], after: Option<&[u8]>) -> Vec<u8> {
    match after {
        Some(after) if after >= prefix => [after, &[0]].concat(),
        _ => prefix.to_vec(),
    }
}

/// The smallest key greater than every key that starts with `prefix`; `None` when
/// there is none (the prefix is empty or all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{prefix_end, walk_start};

    #[test]
    fn a_walk_after_a_key_starts_just_past_it_and_never_before_the_prefix() {
        assert_eq!(walk_start(b"ab", None), b"ab".to_vec());
        assert_eq!(walk_start(b"ab", Some(b"abc")), b"abc\0".to_vec());
        assert_eq!(walk_start(b"ab", Some(b"aa\xff")), b"ab".to_vec());
        assert_eq!(walk_start(b"", Some(b"")), vec![0]);
        assert_eq!(walk_start(b"", Some(&[0xFF])), vec![0xFF, 0]);
    }

    #[test]
    fn prefix_end_carries_past_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
