//! A read connection's copy of the small values it found, handed out again while the
//! file is unchanged (issue 12's stretch: a hit on a hot key without SQLite's look-up).
//!
//! Unchanged means SQLite's data version of the connection (`SQLITE_FCNTL_DATA_VERSION`)
//! is the one the copies were read at. SQLite moves it whenever the file changes, by
//! any connection of any process (a commit, a checkpoint that restarted the log, a
//! file replaced under it), and drops its own page cache at the same moments: a copy
//! is exactly as fresh as the pages SQLite itself would read the row from. It is read
//! inside a read transaction (`BEGIN_READ`), so the version is that of a snapshot
//! begun at this very read: a copy served with it is the value a look-up would find.
//! Deadlines are still compared on every hit (time passes without commits).
//!
//! Copies are made only while the file keeps still: the first look-up after a change
//! empties the copy and makes none, the next ones at the same version fill it. A file
//! that changes between every two reads (a set after each get) costs no allocation.
//! A key with no copy costs a hash look-up and the version read from the look-up's own
//! transaction (a function call): the statement that opens a transaction for the
//! version alone runs only for a key that has a copy.

use crate::error::{Result, SqliteContext};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Opens the read transaction whose snapshot the data version belongs to; the look-up
/// that may follow runs in the same transaction while this statement is stepped.
pub(crate) const BEGIN_READ: &str = "PRAGMA data_version";

/// Values larger than this are not copied: a copy is for crumbs read again and again.
pub(crate) const MAX_VALUE: usize = 16 * 1024;

/// Bytes of copies one handle keeps, across its read connections.
pub(crate) const BUDGET: usize = 4 << 20;

/// What a copy costs beyond its key and value (the table's slot, two allocations).
const OVERHEAD: usize = 64;

/// Slots of the table of keys seen once (a power of two): a key is copied the second
/// time a look-up finds it at one data version, so that keys read once between two
/// writes (a scan, a pass in random order) cost no copy that nobody reads.
const SEEN: usize = 4096;

/// A value as a look-up found it, with what a hit needs besides.
pub(crate) struct Copy {
    pub value: Box<[u8]>,
    pub deadline: Option<i64>,
    /// The entry's `created` (see `access::Access::created`).
    pub created: i64,
}

/// One read connection's copies; dropped with it (its data version means nothing to
/// another connection).
pub(crate) struct HotCopy {
    /// The data version the copies were read at; `None` before the first read.
    version: Option<u32>,
    copies: HashMap<Box<[u8]>, Copy>,
    /// The data version and CRC-32 of the key last found at each slot (by the CRC's
    /// low bits).
    seen: Vec<u64>,
    bytes: usize,
    /// The bytes every connection of the handle holds, against [`BUDGET`].
    held: Arc<AtomicUsize>,
}

impl HotCopy {
    pub fn new(held: Arc<AtomicUsize>) -> HotCopy {
        HotCopy {
            version: None,
            copies: HashMap::new(),
            seen: Vec::new(),
            bytes: 0,
            held,
        }
    }

    /// Whether a copy of `key` is kept (of a version still to be checked): only then
    /// is the file's version worth a statement.
    pub fn has(&self, key: &[u8]) -> bool {
        self.copies.contains_key(key)
    }

    /// The copy under `key` if the file is unchanged (data version `version`, read in
    /// the current read transaction) since it was made; all copies go when it changed.
    pub fn current(&mut self, version: u32, key: &[u8]) -> Option<&Copy> {
        if self.version != Some(version) {
            self.forget();
            self.version = Some(version);
            return None;
        }
        self.copies.get(key)
    }

    /// Keeps a copy of `key`'s `value`, found at data version `version` (read in the
    /// look-up's transaction), if the file kept still since the copies before it were
    /// made, the key was found before (see [`SEEN`]) and the handle's budget allows. At a new version the copies go, and none is
    /// made until the next look-up finds the same version.
    pub fn keep(
        &mut self,
        version: u32,
        key: &[u8],
        value: &[u8],
        deadline: Option<i64>,
        created: i64,
    ) {
        if self.version != Some(version) {
            self.forget();
            self.version = Some(version);
            return;
        }
        let cost = key.len() + value.len() + OVERHEAD;
        if value.len() > MAX_VALUE || self.held.load(Relaxed) + cost > BUDGET {
            return;
        }
        if self.seen.is_empty() {
            self.seen = vec![0; SEEN];
        }
        let crc = crc32fast::hash(key);
        let mark = u64::from(version) << 32 | u64::from(crc);
        if std::mem::replace(&mut self.seen[crc as usize & (SEEN - 1)], mark) != mark {
            return; // the first time at this version
        }
        self.drop_copy(key);
        if self.held.fetch_add(cost, Relaxed) + cost > BUDGET {
            self.held.fetch_sub(cost, Relaxed);
            return;
        }
        self.bytes += cost;
        let copy = Copy {
            value: value.into(),
            deadline,
            created,
        };
        self.copies.insert(key.into(), copy);
    }

    /// Drops a copy that proved stale by time (expired): the look-up decides anew.
    pub fn drop_copy(&mut self, key: &[u8]) {
        if let Some(c) = self.copies.remove(key) {
            let cost = key.len() + c.value.len() + OVERHEAD;
            self.bytes -= cost;
            self.held.fetch_sub(cost, Relaxed);
        }
    }

    fn forget(&mut self) {
        self.copies = HashMap::new();
        self.held
            .fetch_sub(std::mem::take(&mut self.bytes), Relaxed);
    }
}

impl Drop for HotCopy {
    fn drop(&mut self) {
        self.forget();
    }
}

/// `conn`'s data version, in the read transaction a stepped [`BEGIN_READ`] holds.
pub(crate) fn data_version(conn: &Connection) -> Result<u32> {
    let mut version = 0;
    conn.file_control(
        rusqlite::DEFAULT_NAME,
        rusqlite::FileControl::DataVersion(&mut version),
    )
    .ctx("reading the data version")?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks `key` up at `version` until it is copied (the first look-up at a new
    /// version and the first of a key make none); whether it was.
    fn copy(hot: &mut HotCopy, version: u32, key: &[u8], value: &[u8]) -> bool {
        for _ in 0..3 {
            hot.keep(version, key, value, None, 7);
            if hot.has(key) {
                return true;
            }
        }
        false
    }

    fn key(i: usize) -> Vec<u8> {
        format!("key{i}").into_bytes()
    }

    #[test]
    fn the_budget_is_the_handles_and_comes_back_whole() {
        let held = Arc::new(AtomicUsize::new(0));
        let mut a = HotCopy::new(held.clone());
        let mut b = HotCopy::new(held.clone());
        assert!(!copy(&mut a, 1, b"big", &vec![1; MAX_VALUE + 1]));
        assert!(copy(&mut a, 1, b"max", &vec![2; MAX_VALUE]));
        assert_eq!(
            a.current(1, b"max").map(|c| (c.value.len(), c.created)),
            Some((MAX_VALUE, 7))
        );
        // Two connections fill the handle's budget between them, never past it.
        let value = vec![3; 16 * 1024];
        let (mut in_a, mut in_b) = (1, 0);
        for i in 0..BUDGET / value.len() {
            if copy(&mut a, 1, &key(i), &value) {
                in_a += 1;
            }
            if copy(&mut b, 5, &key(i), &value) {
                in_b += 1;
            }
        }
        assert!(in_a > 1 && in_b > 0, "{in_a} {in_b}");
        assert!(held.load(Relaxed) <= BUDGET);
        assert_eq!(held.load(Relaxed), a.bytes + b.bytes);
        assert!(!copy(&mut b, 5, b"one more", &value));
        // A copy dropped, and all of a connection's at a new version, give their room
        // back: `b` copies again.
        let before = held.load(Relaxed);
        a.drop_copy(b"max");
        assert_eq!(before - held.load(Relaxed), 3 + MAX_VALUE + OVERHEAD);
        assert!(a.current(2, &key(0)).is_none());
        assert_eq!(held.load(Relaxed), b.bytes);
        assert!(copy(&mut b, 5, b"one more", &value));
        assert!(b.current(5, b"one more").is_some());
        assert!(b.current(6, b"one more").is_none());
        assert_eq!(held.load(Relaxed), 0);
        assert!(copy(&mut b, 6, b"again", b"v"));
        drop(a);
        drop(b);
        assert_eq!(held.load(Relaxed), 0);
    }
}
