//! Lifetime counters live in the file (schema 2): a file of schema 1 opens, keeps its
//! entries and gains the counters; the counters add up over handles and reopenings,
//! and a get writes nothing.

mod common;

use backlite::{Expiration, Options, Storage, SCHEMA_VERSION};
use common::{file_from_sql, user_version};
use rusqlite::Connection;

/// Schema 1 exactly as the first release wrote it (the file format is frozen).
const SCHEMA_1: &str = "
    CREATE TABLE entries (
        seq        INTEGER PRIMARY KEY,
        key        BLOB    NOT NULL UNIQUE,
        value_id   INTEGER,
        size       INTEGER NOT NULL,
        crc        INTEGER NOT NULL,
        created    INTEGER NOT NULL,
        hits       INTEGER NOT NULL,
        expires_at INTEGER,
        value      BLOB
    );
    CREATE TABLE blobs (
        id    INTEGER PRIMARY KEY,
        value BLOB    NOT NULL
    );
    CREATE INDEX entries_by_expiry ON entries(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE leases (
        key         BLOB    NOT NULL PRIMARY KEY,
        token       INTEGER NOT NULL,
        owner_pid   INTEGER NOT NULL,
        owner_start INTEGER NOT NULL,
        owner_boot  TEXT    NOT NULL,
        deadline    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE state (
        id          INTEGER PRIMARY KEY CHECK (id = 0),
        clock       INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        total_size  INTEGER NOT NULL,
        version_tag TEXT
    );
    INSERT INTO state (id, clock, count, total_size) VALUES (0, 1, 1, 1);
    -- One entry, key 'k', value 'v' (CRC-32 1801730948), hit 5 times.
    INSERT INTO entries (seq, key, value_id, size, crc, created, hits, expires_at, value)
        VALUES (1, x'6b', NULL, 1, 1801730948, 1, 5, NULL, x'76');
    PRAGMA application_id = 1112230996; -- 0x424B4C54, BKLT
    PRAGMA user_version = 1;
    PRAGMA journal_mode = WAL;";

#[test]
fn a_schema_1_file_is_upgraded_with_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_from_sql(&dir, SCHEMA_1);
    assert_eq!(user_version(&path), 1);
    const { assert!(SCHEMA_VERSION >= 2) };

    let s = Storage::open(&path, &Options::new()).unwrap();
    let life = s.lifetime_stats().unwrap();
    assert_eq!((life.hits, life.misses, life.evictions), (0, 0, 0));
    assert!(
        life.since_ms > 1_700_000_000_000,
        "counting starts at the upgrade"
    );
    let mut listed = Vec::new();
    s.key_infos(b"", |k| {
        listed.push(k);
        true
    })
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_slice(), listed[0].hits), (&b"k"[..], 5));
    assert_eq!(
        listed[0].age, None,
        "schema 1 did not record when it was set"
    );
    assert_eq!(s.get(b"k").unwrap().unwrap().0, b"v");
    s.set(b"new", b"n", Expiration::Never).unwrap();
    drop(s);

    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(s.lifetime_stats().unwrap().hits, 1);
    assert_eq!(s.stats().unwrap().count, 2);
    assert_eq!(s.check(false).unwrap().damaged, 0);
}

#[test]
fn gets_are_counted_without_writing_and_reach_the_file_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, &Options::new()).unwrap();
    s.set(b"k", b"v", Expiration::Never).unwrap();
    let commits = |p: &std::path::Path| -> i64 {
        // The WAL's size grows with every commit; none may come from a get.
        std::fs::metadata(format!("{}-wal", p.display())).map_or(0, |m| m.len() as i64)
    };
    let wal_before = commits(&path);
    for _ in 0..100 {
        s.get(b"k").unwrap().unwrap();
        assert!(s.get(b"absent").unwrap().is_none());
    }
    assert_eq!(commits(&path), wal_before, "a get wrote to the file");
    let other = Storage::open(&path, &Options::new()).unwrap();
    let life = other.lifetime_stats().unwrap();
    assert_eq!(
        (life.hits, life.misses),
        (100, 100),
        "this process's, unwritten"
    );
    drop(other);
    drop(s);

    // Read back by a plain SQLite connection: they are in the file, in the newest
    // entry row (schema 4).
    let (hits, misses): (i64, i64) = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT state_hits, state_misses FROM entries ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((hits, misses), (100, 100));
}
