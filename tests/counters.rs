//! The file's counters live in the newest entry row (schema 4), or in `state` when the
//! table is empty: a file of schema 3 opens with its counters, and they stay exact
//! through writes, an emptied table, a new version tag and reopenings.

mod common;

use backlite::{Expiration, Options, Storage, SCHEMA_VERSION};
use common::{file_from_sql, user_version};
use rusqlite::Connection;

/// Schema 3 exactly as 0.2 wrote it (schema 1, then the migrations to 2 and 3).
const SCHEMA_3: &str = "
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
    , set_at    INTEGER);
    CREATE TABLE blobs (
        id    INTEGER PRIMARY KEY,
        value BLOB    NOT NULL
    , file TEXT);
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
    , hits        INTEGER NOT NULL DEFAULT 0, misses      INTEGER NOT NULL DEFAULT 0, evictions   INTEGER NOT NULL DEFAULT 0, expirations INTEGER NOT NULL DEFAULT 0, stats_since INTEGER);
    CREATE INDEX blobs_by_file ON blobs(file) WHERE file IS NOT NULL;
    -- Two entries, 'a' -> 'v' and 'b' -> 'vv' (CRC-32 1801730948 and 2178553990),
    -- set at ticks 3 and 5 of a clock at 5, and the lifetime counters of a used file.
    INSERT INTO state (id, clock, count, total_size, hits, misses, evictions, expirations,
                       stats_since)
        VALUES (0, 5, 2, 3, 7, 3, 1, 2, 1700000000000);
    INSERT INTO entries (seq, key, value_id, size, crc, created, hits, expires_at, value, set_at)
        VALUES (3, x'61', NULL, 1, 1801730948, 3, 0, NULL, x'76', 1700000000000),
               (5, x'62', NULL, 2, 2178553990, 5, 0, NULL, x'7676', 1700000000000);
    PRAGMA application_id = 1112230996; -- 0x424B4C54, BKLT
    PRAGMA user_version = 3;
    PRAGMA journal_mode = WAL;";

/// `(count, total_size, hits, misses, evictions, expirations)` as a handle reads them.
fn counters(s: &Storage) -> (u64, u64, u64, u64, u64, u64) {
    let st = s.stats().unwrap();
    let life = s.lifetime_stats().unwrap();
    (
        st.count,
        st.total_size,
        life.hits,
        life.misses,
        life.evictions,
        life.expirations,
    )
}

fn schema_3_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = file_from_sql(dir, SCHEMA_3);
    assert_eq!(user_version(&path), 3);
    path
}

#[test]
fn a_schema_3_file_is_upgraded_with_its_entries_and_counters() {
    const { assert!(SCHEMA_VERSION >= 4) };
    let dir = tempfile::tempdir().unwrap();
    let path = schema_3_file(&dir);
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(counters(&s), (2, 3, 7, 3, 1, 2), "as schema 3 kept them");
    assert!(s.check(false).unwrap().healthy());
    assert_eq!(s.get(b"a").unwrap().unwrap().0, b"v");
    assert_eq!(s.get(b"zz").unwrap(), None);
    s.set(b"c", b"vvv", Expiration::Never).unwrap();
    assert_eq!(counters(&s), (3, 6, 8, 4, 1, 2));
    drop(s);

    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(counters(&s), (3, 6, 8, 4, 1, 2));
    assert!(s.check(false).unwrap().healthy());
    // The newest row goes: the one before it takes the counters.
    assert!(s.delete(b"c").unwrap());
    assert_eq!(counters(&s), (2, 3, 8, 4, 1, 2));
    // The table empties: `state` takes them.
    assert!(s.delete(b"a").unwrap());
    assert!(s.delete(b"b").unwrap());
    drop(s);
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(counters(&s), (0, 0, 8, 4, 1, 2));
    s.set(b"d", b"v", Expiration::Never).unwrap();
    assert_eq!(counters(&s), (1, 1, 8, 4, 1, 2));
    assert!(s.check(false).unwrap().healthy());
}

#[test]
fn a_new_version_tag_drops_the_entries_but_not_the_lifetime_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut o = Options::new();
    o.set_version_tag("one");
    let s = Storage::open(&path, &o).unwrap();
    s.set(b"a", b"v", Expiration::Never).unwrap();
    s.get(b"a").unwrap().unwrap();
    s.get(b"absent").unwrap();
    s.set(b"b", b"vv", Expiration::Never).unwrap();
    assert_eq!(counters(&s), (2, 3, 1, 1, 0, 0));
    drop(s);

    o.set_version_tag("two");
    let s = Storage::open(&path, &o).unwrap();
    assert_eq!(counters(&s), (0, 0, 1, 1, 0, 0));
    s.set(b"c", b"v", Expiration::Never).unwrap();
    assert_eq!(counters(&s), (1, 1, 1, 1, 0, 0));
}

#[test]
fn zeroing_the_lifetime_counters_keeps_count_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, &Options::new()).unwrap();
    s.set(b"a", b"v", Expiration::Never).unwrap();
    s.get(b"a").unwrap().unwrap();
    s.set(b"b", b"vv", Expiration::Never).unwrap();
    s.zero_stats().unwrap();
    assert_eq!(counters(&s), (2, 3, 0, 0, 0, 0));
    drop(s);
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(counters(&s), (2, 3, 0, 0, 0, 0));
}

#[test]
fn a_hit_written_later_moves_its_row_above_the_newest_and_the_counters_follow() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("c.db"), &Options::new()).unwrap();
    s.set(b"a", b"v", Expiration::Never).unwrap();
    s.set(b"b", b"vv", Expiration::Never).unwrap();
    s.get(b"a").unwrap().unwrap();
    // A write that ticks the hit without writing it, then one that writes it: `a` goes
    // above `b`, the row that held the counters. (A set already expired: it stores
    // nothing, yet is a write; a delete of an absent key no longer writes.)
    s.set(
        b"absent",
        b"v",
        Expiration::After(std::time::Duration::ZERO),
    )
    .unwrap();
    s.flush().unwrap();
    s.set(b"c", b"vvv", Expiration::Never).unwrap();
    assert_eq!(counters(&s), (3, 6, 1, 0, 0, 0));
    assert!(s.check(false).unwrap().healthy());
}

/// Damage to the counters themselves (a wrong type, a negative number, a clock behind
/// the newest entry): every write fails with `Corrupt` and writes nothing, a check
/// reports it, and a check with repair recounts them; a damaged lifetime counter is
/// zeroed, the sound ones are kept.
#[test]
fn damaged_counters_fail_writes_until_a_check_with_repair_rewrites_them() {
    use backlite::ErrorKind;
    let newest = "WHERE seq = (SELECT max(seq) FROM entries)";
    for damage in [
        format!("UPDATE entries SET state_count = 'x' {newest}"),
        format!("UPDATE entries SET state_total_size = -1 {newest}"),
        format!("UPDATE entries SET state_clock = 2 {newest}"),
        format!("UPDATE entries SET state_hits = 1.5 {newest}"),
        "DELETE FROM entries; UPDATE state SET total_size = 'x'".to_string(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let s = Storage::open(&path, &Options::new()).unwrap();
        s.set(b"a", b"v", Expiration::Never).unwrap();
        s.get(b"a").unwrap().unwrap();
        s.get(b"absent").unwrap();
        s.set(b"b", b"vv", Expiration::Never).unwrap();
        s.set(b"c", b"vvv", Expiration::Never).unwrap();
        drop(s);
        Connection::open(&path)
            .unwrap()
            .execute_batch(&damage)
            .unwrap();
        let emptied = damage.starts_with("DELETE");
        let (n, size) = if emptied { (0, 0) } else { (3, 6) };

        let s = Storage::open(&path, &Options::new()).unwrap();
        let e = s.set(b"d", b"vvvv", Expiration::Never).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{damage}: {e}");
        assert!(e.message().contains("check --repair"), "{e}");
        // (A clock behind the rows fails only the writes that tick it.)
        // A delete of a key with no row writes nothing: NOT_FOUND (the emptied file).
        if emptied {
            assert!(!s.delete(b"a").unwrap(), "{damage}");
        } else if !damage.contains("state_clock") {
            assert_eq!(s.delete(b"a").unwrap_err().kind(), ErrorKind::Corrupt);
        }
        let found = s.check(false).unwrap();
        assert!(found.counters_damaged() && !found.healthy(), "{damage}");
        assert_eq!((found.actual_count, found.actual_total_size), (n, size));

        let repaired = s.check(true).unwrap();
        assert!(repaired.counters_damaged() && repaired.repaired && repaired.healthy());
        assert!(s.check(false).unwrap().healthy(), "{damage}");
        s.set(b"d", b"vvvv", Expiration::Never).unwrap();
        // The emptied file's counters are those `state` held before the first set.
        let hits = if damage.contains("state_hits") || emptied {
            0
        } else {
            1
        };
        let misses = if emptied { 0 } else { 1 };
        assert_eq!(
            counters(&s),
            (n + 1, size + 4, hits, misses, 0, 0),
            "{damage}"
        );
        if !emptied {
            assert_eq!(s.get(b"a").unwrap().unwrap().0, b"v");
            assert_eq!(s.get(b"c").unwrap().unwrap().0, b"vvv");
        }
        assert!(s.check(false).unwrap().healthy(), "{damage}");
    }
}
