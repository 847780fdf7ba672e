//! The hit buffer, through `Storage::get`: no get writes other gets' hits (a hit
//! writer does), and hits wait in bounded memory when it falls behind.

use crate::access::{FLUSH_THRESHOLD, MAX_WAITING};
use crate::{Entry, Expiration, Options, Storage};
use std::sync::atomic::Ordering::Relaxed;

fn filled(n: usize) -> (tempfile::TempDir, Storage, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("c.db"), &Options::new()).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i:08}").into_bytes()).collect();
    let entries: Vec<Entry> = keys
        .iter()
        .map(|k| Entry {
            key: k,
            value: b"v",
            expiration: Expiration::Never,
        })
        .collect();
    s.set_many(&entries).unwrap();
    (dir, s, keys)
}

/// Rows whose hits reached the file, read on a connection of the test's own.
fn rows_with_hits(dir: &tempfile::TempDir) -> i64 {
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    raw.query_row("SELECT count(*) FROM entries WHERE hits > 0", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn no_get_writes_the_hits_of_other_gets() {
    let (dir, s, keys) = filled(FLUSH_THRESHOLD + 1000);
    let commits = s.commits.load(Relaxed);
    for (i, k) in keys.iter().enumerate() {
        assert!(s.get(k).unwrap().is_some());
        assert_eq!(
            s.commits.load(Relaxed),
            commits,
            "get {i} wrote: the get that fills the hit buffer must leave it to the hit writer"
        );
    }
    // The hit writer wrote the first full buffer, with no write of the handle.
    s.shared.join_hit_writers();
    assert!(rows_with_hits(&dir) >= FLUSH_THRESHOLD as i64);
    assert_eq!(s.commits.load(Relaxed), commits);
}

#[test]
fn gets_never_wait_for_the_hit_writer_and_waiting_hits_stay_bounded() {
    let (dir, s, keys) = filled(MAX_WAITING + 1000);
    {
        // As if the hit writer were far behind: it cannot get its turn to write.
        let _turn = s.shared.writing();
        for k in &keys {
            assert!(s.get(k).unwrap().is_some());
        }
        assert_eq!(s.shared.accesses().len(), MAX_WAITING);
        // Keys already waiting still count their hits.
        assert!(s.get(&keys[0]).unwrap().is_some());
        assert_eq!(s.shared.accesses().len(), MAX_WAITING);
        assert_eq!(rows_with_hits(&dir), 0);
    }
    s.shared.join_hit_writers();
    assert!(rows_with_hits(&dir) >= MAX_WAITING as i64);
    assert_eq!(s.stats().unwrap().hits, keys.len() as u64 + 1);
}
