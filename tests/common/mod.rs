#![allow(dead_code)]

use backlite::{EvictionPolicy, Expiration, Options, Storage};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub const NEVER: Expiration = Expiration::Never;

/// A storage in a fresh temporary directory (kept alive by the returned guard).
pub fn open(options: &Options) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("cache.db"), options).unwrap();
    (dir, storage)
}

pub fn options(max_size: u64, policy: EvictionPolicy) -> Options {
    let mut o = Options::new();
    o.set_max_size(max_size).unwrap();
    o.set_eviction_policy(policy);
    o
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn install(options: &mut Options) -> FakeClock {
        let clock = FakeClock(Arc::new(AtomicI64::new(1_700_000_000_000)));
        let inner = clock.0.clone();
        options.set_clock(Arc::new(move || inner.load(Ordering::SeqCst)));
        clock
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

pub fn present(s: &Storage, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| s.contains(k.as_bytes()).unwrap())
        .map(|k| k.to_string())
        .collect()
}

pub fn set(s: &Storage, key: &str, len: usize) {
    s.set(key.as_bytes(), &vec![b'v'; len], NEVER).unwrap();
}

pub fn get(s: &Storage, key: &str) -> Option<Vec<u8>> {
    s.get(key.as_bytes()).unwrap().map(|(v, _)| v)
}

/// `old.db` in `dir`, made by running `sql`: a file as an earlier release wrote it.
pub fn file_from_sql(dir: &tempfile::TempDir, sql: &str) -> PathBuf {
    let path = dir.path().join("old.db");
    Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    path
}

/// The schema version recorded in the file (SQLite's `user_version`).
pub fn user_version(path: &Path) -> i32 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// The value files (`v2-*.blv`, and `v-*.blv` of format 1) in the folder beside the
/// cache at `cache`, sorted.
pub fn value_files(cache: &Path) -> Vec<PathBuf> {
    let mut folder = cache.as_os_str().to_os_string();
    folder.push(".values");
    let Ok(list) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = list
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            (n.starts_with("v2-") || n.starts_with("v-")) && n.ends_with(".blv")
        })
        .collect();
    found.sort();
    found
}

/// The length of the record after the value in a value file of format 2 (`v2-*.blv`).
pub const VALUE_RECORD_LEN: u64 = 24;

/// The offset of the last byte of the value in the value file `file` (format 2: the
/// value first, then its record).
pub fn last_value_byte(file: &Path) -> u64 {
    std::fs::metadata(file).unwrap().len() - VALUE_RECORD_LEN - 1
}

/// Damages the blob under `k` in the closed cache at `path`: same length, other bytes.
pub fn damage_blob(path: &Path) {
    let db = Connection::open(path).unwrap();
    let n = db
        .execute(
            "UPDATE blobs SET value = zeroblob(length(value)) \
             WHERE id = (SELECT value_id FROM entries WHERE key = x'6b')",
            [],
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// A `/proc/self/status` figure in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// This process's peak resident memory since [`reset_peak_rss`], in KiB.
pub fn peak_rss_kib() -> usize {
    status_kib("VmHWM:")
}

/// This process's resident memory now, in KiB.
pub fn current_rss_kib() -> usize {
    status_kib("VmRSS:")
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs).
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}
