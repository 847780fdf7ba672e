//! Opening recognises new files, BackLite files and everything else, and never
//! modifies a file that is not ours.

mod common;
use backlite::{ErrorKind, Options, Storage};
use common::*;
use std::path::Path;

fn open_err(path: &Path) -> ErrorKind {
    Storage::open(path, &Options::new())
        .err()
        .expect("open must fail")
        .kind()
}

fn assert_untouched(path: &Path, before: &[u8]) {
    assert_eq!(std::fs::read(path).unwrap(), before);
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = format!("{}{suffix}", path.display());
        assert!(!Path::new(&side).exists(), "{side} was left behind");
    }
}

#[test]
fn a_missing_or_empty_file_is_created_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    {
        let s = Storage::open(&path, &Options::new()).unwrap();
        set(&s, "kept", 5);
    }
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(get(&s, "kept"), Some(vec![b'v'; 5]));

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    Storage::open(&empty, &Options::new()).unwrap();
}

#[test]
fn a_missing_parent_folder_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        open_err(&dir.path().join("no/such/dir/c.db")),
        ErrorKind::Io
    );
    assert!(!dir.path().join("no").exists());
}

#[test]
fn files_that_are_not_caches_are_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"my precious notes\n").unwrap();
    assert_eq!(open_err(&text), ErrorKind::NotACache);
    assert_untouched(&text, b"my precious notes\n");

    let random = dir.path().join("random.bin");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    assert_eq!(open_err(&random), ErrorKind::NotACache);
    assert_untouched(&random, &bytes);

    let foreign = dir.path().join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    assert_eq!(open_err(&foreign), ErrorKind::NotACache);
    assert_untouched(&foreign, &before);
}

#[test]
fn a_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(open_err(dir.path()), ErrorKind::Io);
}

#[test]
fn a_newer_schema_is_incompatible_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(Storage::open(&path, &Options::new()).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", backlite::SCHEMA_VERSION + 1)
            .unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    assert_eq!(open_err(&path), ErrorKind::Incompatible);
    assert_untouched(&path, &before);
}

#[test]
fn an_empty_path_is_invalid() {
    assert_eq!(open_err(Path::new("")), ErrorKind::InvalidArgument);
}

#[test]
fn memory_caches_are_private_to_their_handle() {
    let a = Storage::open(backlite::MEMORY, &Options::new()).unwrap();
    let b = Storage::open(backlite::MEMORY, &Options::new()).unwrap();
    set(&a, "k", 1);
    assert_eq!(get(&a, "k"), Some(vec![b'v']));
    assert_eq!(get(&b, "k"), None);
}

#[test]
fn a_new_version_tag_drops_every_entry_and_the_same_tag_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagged.db");
    let tagged = |tag: &str| {
        let mut o = Options::new();
        o.set_version_tag(tag);
        Storage::open(&path, &o).unwrap()
    };
    set(&tagged("3.11"), "a", 1);
    assert_eq!(get(&tagged("3.11"), "a"), Some(vec![b'v']));
    // No tag: the file's tag is neither checked nor changed.
    assert_eq!(
        get(&Storage::open(&path, &Options::new()).unwrap(), "a"),
        Some(vec![b'v'])
    );
    let s = tagged("3.12");
    assert_eq!(get(&s, "a"), None);
    assert_eq!(s.stats().unwrap().count, 0);
}

#[test]
fn a_damaged_value_is_a_miss_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, &Options::new()).unwrap();
    set(&s, "a", 100); // small: stored in its row
    set(&s, "b", 100);
    set(&s, "big", 5000); // large: stored apart
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "UPDATE entries SET value = zeroblob(100) WHERE key = x'61';
             UPDATE blobs SET value = zeroblob(5000)
             WHERE id = (SELECT value_id FROM entries WHERE key = x'626967');",
        )
        .unwrap();
    }
    assert_eq!(get(&s, "a"), None);
    assert_eq!(get(&s, "big"), None);
    assert_eq!(get(&s, "b"), Some(vec![b'v'; 100]));
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size), (1, 100));
}

#[test]
fn opening_a_ready_file_does_not_wait_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    set(&Storage::open(&path, &Options::new()).unwrap(), "k", 3);
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap(); // another process writing
    let mut o = Options::new();
    o.set_busy_timeout(std::time::Duration::from_millis(50));
    let s = Storage::open(&path, &o).expect("a reader needs no write lock to open");
    assert_eq!(get(&s, "k"), Some(vec![b'v'; 3]));
    writer.execute_batch("COMMIT").unwrap();
}

#[test]
fn a_policy_index_that_cannot_be_created_now_does_not_fail_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    set(&Storage::open(&path, &Options::new()).unwrap(), "k", 3);
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap(); // another process writing
    let mut o = Options::new();
    o.set_eviction_policy(backlite::EvictionPolicy::LeastFrequentlyUsed);
    o.set_max_size(4).unwrap();
    o.set_busy_timeout(std::time::Duration::from_millis(50));
    let s = Storage::open(&path, &o).expect("opens without the LFU index");
    assert_eq!(get(&s, "k"), Some(vec![b'v'; 3]));
    writer.execute_batch("COMMIT").unwrap();
    let has_index = || -> i64 {
        writer
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'entries_by_hits'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(has_index(), 0);
    // The handle's first write adds it (a handle that lived without it evicted by a
    // scan of every entry for good), and evicts as its policy says.
    set(&s, "k2", 3);
    assert_eq!(present(&s, &["k", "k2"]), ["k2"]);
    assert_eq!(has_index(), 1);
}
