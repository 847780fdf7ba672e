//! A damaged entry row (a column of the wrong type, NULL where the schema says NOT NULL,
//! an impossible size) is a miss that is removed, like a value that fails its CRC: no
//! call on its key fails, the counters stay exact, and check reports and repairs it.
//! The rows are damaged by editing the closed file with SQLite, as a flipped bit in a
//! record header would leave them.

mod common;
use backlite::{Entry, EvictionPolicy, Options, Storage};
use common::*;
use std::path::Path;

/// One kind of damage, done to the entry under `?1`.
struct Damage {
    name: &'static str,
    /// The value is stored apart, in `blobs`.
    large: bool,
    /// An UPDATE of the entry under `?1`, or the column set to NULL despite NOT NULL.
    edit: Edit,
    /// Removing the entry leaves its value behind (its reference is what was damaged),
    /// for check to find.
    orphan: bool,
}

enum Edit {
    Sql(&'static str),
    Null(&'static str),
}

const fn sql(name: &'static str, large: bool, edit: &'static str) -> Damage {
    Damage {
        name,
        large,
        edit: Edit::Sql(edit),
        orphan: false,
    }
}

const DAMAGES: &[Damage] = &[
    // The case: the value's serial type BLOB -> TEXT.
    sql(
        "inline value is text",
        false,
        "UPDATE entries SET value = CAST(value AS TEXT) WHERE key = ?1",
    ),
    sql(
        "stored value is text",
        true,
        "UPDATE blobs SET value = CAST(value AS TEXT) \
         WHERE id = (SELECT value_id FROM entries WHERE key = ?1)",
    ),
    sql(
        "inline value is an integer",
        false,
        "UPDATE entries SET value = 7 WHERE key = ?1",
    ),
    sql(
        "value is missing",
        false,
        "UPDATE entries SET value = NULL WHERE key = ?1",
    ),
    Damage {
        name: "crc is null",
        large: false,
        edit: Edit::Null("crc"),
        orphan: false,
    },
    Damage {
        name: "size is null",
        large: true,
        edit: Edit::Null("size"),
        orphan: false,
    },
    Damage {
        name: "size of an inline value is null",
        large: false,
        edit: Edit::Null("size"),
        orphan: false,
    },
    sql(
        "crc is text",
        false,
        "UPDATE entries SET crc = 'x' WHERE key = ?1",
    ),
    sql(
        "crc is real",
        true,
        "UPDATE entries SET crc = crc + 0.5 WHERE key = ?1",
    ),
    sql(
        "size is text",
        true,
        "UPDATE entries SET size = 'big' WHERE key = ?1",
    ),
    sql(
        "size is negative",
        false,
        "UPDATE entries SET size = -5 WHERE key = ?1",
    ),
    sql(
        "size is one byte off",
        true,
        "UPDATE entries SET size = size + 1 WHERE key = ?1",
    ),
    sql(
        "size is huge",
        false,
        "UPDATE entries SET size = 4611686018427387904 WHERE key = ?1",
    ),
    // Larger than any memory: a get that allocated it first failed "out of memory".
    sql(
        "size of a stored value is huge",
        true,
        "UPDATE entries SET size = 4611686018427387904 WHERE key = ?1",
    ),
    sql(
        "expires_at is text",
        false,
        "UPDATE entries SET expires_at = 'later' WHERE key = ?1",
    ),
    sql(
        "expires_at is real",
        true,
        "UPDATE entries SET expires_at = 1000000000000000.5 WHERE key = ?1",
    ),
    Damage {
        name: "value_id is text",
        large: true,
        edit: Edit::Sql("UPDATE entries SET value_id = 'x' WHERE key = ?1"),
        orphan: true,
    },
    Damage {
        name: "value_id is null",
        large: true,
        edit: Edit::Sql("UPDATE entries SET value_id = NULL WHERE key = ?1"),
        orphan: true,
    },
];

const DAMAGED: &[u8] = b"damaged";
/// The entries that stay healthy: one inline, one stored apart.
const GOOD: &[(&[u8], usize)] = &[(b"small", 10), (b"large", 1000)];

fn len_of(d: &Damage) -> usize {
    if d.large {
        700
    } else {
        20
    }
}

fn value(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Applies `d` to the closed file at `path`.
fn damage(path: &Path, d: &Damage) {
    let conn = rusqlite::Connection::open(path).unwrap();
    match d.edit {
        Edit::Sql(sql) => {
            let n = conn.execute(sql, [DAMAGED]).unwrap();
            assert_eq!(n, 1, "{}: the edit changed nothing", d.name);
        }
        Edit::Null(column) => {
            // SQLite enforces NOT NULL on writes only: drop it from the schema text,
            // write the NULL from a connection that reads that schema, and put the text
            // back, which leaves exactly the row a flipped serial type would.
            let schema: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE name = 'entries'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let loose: Vec<String> = schema
                .lines()
                .map(|l| {
                    if l.trim_start().starts_with(&format!("{column} ")) {
                        l.replace(" NOT NULL", "")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            let loose = loose.join("\n");
            assert_ne!(loose, schema, "{column} is not NOT NULL");
            let rewrite = |conn: &rusqlite::Connection, sql: &str| {
                conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
                conn.execute(
                    "UPDATE sqlite_master SET sql = ?1 WHERE name = 'entries'",
                    [sql],
                )
                .unwrap();
            };
            rewrite(&conn, &loose);
            drop(conn);
            let conn = rusqlite::Connection::open(path).unwrap();
            let n = conn
                .execute(
                    &format!("UPDATE entries SET {column} = NULL WHERE key = ?1"),
                    [DAMAGED],
                )
                .unwrap();
            assert_eq!(n, 1);
            rewrite(&conn, &schema);
        }
    }
}

/// A closed cache file holding the good entries and the entry `d` then damages, and a
/// handle opened on it afterwards.
fn damaged_cache(dir: &Path, d: &Damage, options: &Options) -> Storage {
    let path = dir.join("cache.db");
    let s = Storage::open(&path, options).unwrap();
    s.set(DAMAGED, &value(len_of(d)), NEVER).unwrap();
    for &(k, len) in GOOD {
        s.set(k, &value(len), NEVER).unwrap();
    }
    drop(s);
    damage(&path, d);
    Storage::open(&path, options).unwrap()
}

/// `damaged_cache` whose damaged entry is also due (expired, not yet purged).
fn damaged_and_due(dir: &Path, d: &Damage) -> Storage {
    drop(damaged_cache(dir, d, &Options::new()));
    let path = dir.join("cache.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE entries SET expires_at = 0 WHERE key = ?1",
            [DAMAGED],
        )
        .unwrap();
    Storage::open(&path, &Options::new()).unwrap()
}

fn raw_rows(s: &Storage, key: &[u8]) -> i64 {
    let conn = rusqlite::Connection::open(s.path().unwrap()).unwrap();
    conn.query_row("SELECT count(*) FROM entries WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .unwrap()
}

/// The counters hold exactly the good entries plus `extra` (count, bytes), and check
/// finds nothing wrong but the damaged value an orphan may leave behind.
fn assert_exact(s: &Storage, d: &Damage, extra: (u64, u64)) {
    let st = s.stats().unwrap();
    let good: u64 = GOOD.iter().map(|&(_, len)| len as u64).sum();
    assert_eq!(
        (st.count, st.total_size),
        (GOOD.len() as u64 + extra.0, good + extra.1),
        "{}: counters",
        d.name
    );
    let report = s.check(false).unwrap();
    assert_eq!(report.damaged, 0, "{}: {report:?}", d.name);
    assert_eq!(
        (report.recorded_count, report.recorded_total_size),
        (report.actual_count, report.actual_total_size),
        "{}: {report:?}",
        d.name
    );
    assert_eq!(report.orphan_values, d.orphan as u64, "{}", d.name);
    for &(k, len) in GOOD {
        assert_eq!(s.get(k).unwrap().unwrap().0, value(len), "{}", d.name);
    }
}

#[test]
fn a_lookup_of_a_damaged_row_is_a_miss_that_removes_it() {
    for d in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        assert!(!s.contains(DAMAGED).unwrap(), "{}", d.name);
        let before = s.stats().unwrap().misses;
        assert_eq!(s.get(DAMAGED).unwrap(), None, "{}", d.name);
        assert_eq!(s.stats().unwrap().misses, before + 1, "{}", d.name);
        // Removal may be deferred to the next write; stats writes.
        s.stats().unwrap();
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}: not removed", d.name);
        assert_exact(&s, d, (0, 0));
        s.set(DAMAGED, b"fresh", NEVER).unwrap();
        assert_eq!(s.get(DAMAGED).unwrap().unwrap().0, b"fresh", "{}", d.name);
        assert_exact(&s, d, (1, 5));
    }
}

#[test]
fn a_cached_call_on_a_damaged_row_computes_and_stores() {
    for d in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        let v = s
            .cached_call(DAMAGED, NEVER, None, || Ok(b"computed".to_vec()))
            .unwrap();
        assert_eq!(v, b"computed", "{}", d.name);
        assert_eq!(
            s.get(DAMAGED).unwrap().unwrap().0,
            b"computed",
            "{}",
            d.name
        );
        assert_exact(&s, d, (1, 8));
    }
}

#[test]
fn set_delete_and_set_many_of_a_damaged_key_work() {
    for d in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        s.set(DAMAGED, b"again", NEVER).unwrap();
        assert_eq!(s.get(DAMAGED).unwrap().unwrap().0, b"again", "{}", d.name);
        assert_exact(&s, d, (1, 5));

        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        s.delete(DAMAGED).unwrap();
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}", d.name);
        assert_eq!(s.get(DAMAGED).unwrap(), None, "{}", d.name);
        assert_exact(&s, d, (0, 0));

        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        let entry = Entry {
            key: DAMAGED,
            value: b"many",
            expiration: NEVER,
        };
        s.set_many(&[entry]).unwrap();
        assert_eq!(s.get(DAMAGED).unwrap().unwrap().0, b"many", "{}", d.name);
        assert_exact(&s, d, (1, 4));
    }
}

#[test]
fn a_damaged_row_is_evicted_and_expires_like_any_other() {
    for d in DAMAGES {
        // The damaged entry is the oldest: the first victim.
        let good: usize = GOOD.iter().map(|&(_, len)| len).sum();
        let o = options((good + len_of(d)) as u64, EvictionPolicy::LeastRecentlyUsed);
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &o);
        s.set(b"new", &value(5), NEVER).unwrap();
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}: not evicted", d.name);
        assert_exact(&s, d, (1, 5));
        // A deadline that is a real number is due by its value, and purged first.
        let st = s.stats().unwrap();
        assert_eq!(st.evictions + st.expirations, 1, "{}", d.name);
    }
    for d in DAMAGES {
        if matches!(d.name, "expires_at is text" | "expires_at is real") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        // Due now: the next write purges it without reading it.
        let s = damaged_and_due(dir.path(), d);
        s.set(b"new", &value(5), NEVER).unwrap();
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}: not purged", d.name);
        assert_exact(&s, d, (1, 5));
    }
}

/// Stats only reads: an expired damaged row, not yet purged, is left out of the count
/// and never makes it fail (a size of text or a huge one once did: the subtraction
/// became a real number, or sum() overflowed).
#[test]
fn stats_leave_out_an_expired_damaged_row_before_it_is_purged() {
    for d in DAMAGES {
        if matches!(d.name, "expires_at is text" | "expires_at is real") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_and_due(dir.path(), d);
        let st = s
            .stats()
            .unwrap_or_else(|e| panic!("{}: stats failed: {e}", d.name));
        assert_eq!(st.count, GOOD.len() as u64, "{}: count", d.name);
        if !d.name.starts_with("size") {
            let good: u64 = GOOD.iter().map(|&(_, len)| len as u64).sum();
            assert_eq!(st.total_size, good, "{}: total size", d.name);
        }
    }
}

#[test]
fn check_reports_every_damaged_row_and_repair_removes_it() {
    for d in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        let found = s.check(false).unwrap();
        assert!(!found.healthy() && !found.repaired, "{}: {found:?}", d.name);
        assert_eq!((found.entries, found.damaged), (3, 1), "{}", d.name);
        assert_eq!(found.actual_count, 2, "{}", d.name);
        assert_eq!(s.check(false).unwrap(), found, "{}: check changed", d.name);
        assert_eq!(raw_rows(&s, DAMAGED), 1, "{}", d.name);
        let fixed = s.check(true).unwrap();
        assert!(fixed.repaired && fixed.healthy(), "{}: {fixed:?}", d.name);
        let after = s.check(false).unwrap();
        assert!(after.healthy() && !after.repaired, "{}: {after:?}", d.name);
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}", d.name);
        let st = s.stats().unwrap();
        let good: u64 = GOOD.iter().map(|&(_, len)| len as u64).sum();
        assert_eq!((st.count, st.total_size), (2, good), "{}", d.name);
    }
}

/// Export, `backlite keys` (`key_infos`) and `backlite stats` (`inspect`) walk the
/// table: a damaged row, as lookups and check tell one, is left out (export counts it
/// as skipped) and never fails them.
#[test]
fn export_and_inspect_leave_out_a_damaged_row() {
    let bookkeeping = [
        (
            "key is text",
            "UPDATE entries SET key = CAST(key AS TEXT) WHERE key = ?1",
        ),
        (
            "key is an integer",
            "UPDATE entries SET key = 12 WHERE key = ?1",
        ),
        (
            "created is text",
            "UPDATE entries SET created = 'x' WHERE key = ?1",
        ),
        (
            "hits is real",
            "UPDATE entries SET hits = 0.5 WHERE key = ?1",
        ),
    ]
    .map(|(name, edit)| sql(name, true, edit));
    let mut good: Vec<Vec<u8>> = GOOD.iter().map(|(k, _)| k.to_vec()).collect();
    good.sort();
    for d in DAMAGES.iter().chain(&bookkeeping) {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        let mut exported = Vec::new();
        let summary = s
            .export(|e| {
                exported.push(e.key.to_vec());
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: export failed: {e}", d.name));
        exported.sort();
        assert_eq!(exported, good, "{}: exported", d.name);
        assert_eq!((summary.entries, summary.skipped), (2, 1), "{}", d.name);
        let mut listed = Vec::new();
        s.key_infos(b"", |k| {
            listed.push(k.key);
            true
        })
        .unwrap_or_else(|e| panic!("{}: listing failed: {e}", d.name));
        listed.sort();
        assert_eq!(listed, good, "{}: listed", d.name);
        let info = s
            .inspect(&[std::time::Duration::from_secs(60)])
            .unwrap_or_else(|e| panic!("{}: inspect failed: {e}", d.name));
        // The damaged entry was set first: the end of the access order after it.
        assert_eq!(
            info.least_recently_used.map(|k| k.key).as_deref(),
            Some(GOOD[0].0),
            "{}",
            d.name
        );
        assert_eq!(
            info.most_recently_used.map(|k| k.key).as_deref(),
            Some(GOOD[1].0),
            "{}",
            d.name
        );
    }
}

/// A key whose type was changed cannot be looked up at all, and `created` and `hits`
/// are read by no lookup: check finds such rows, repair removes them, and listing keys
/// works meanwhile.
#[test]
fn check_finds_a_row_with_a_bad_key_created_or_hits() {
    for (what, edit) in [
        (
            "text",
            "UPDATE entries SET key = CAST(key AS TEXT) WHERE key = ?1",
        ),
        ("integer", "UPDATE entries SET key = 12 WHERE key = ?1"),
        ("created", "UPDATE entries SET created = 'x' WHERE key = ?1"),
        ("hits", "UPDATE entries SET hits = 0.5 WHERE key = ?1"),
    ] {
        let d = Damage {
            name: what,
            large: true,
            edit: Edit::Sql(edit),
            orphan: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), &d, &Options::new());
        let mut keys = Vec::new();
        s.keys(|k| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        assert!(keys.len() >= 2, "{what}: {keys:?}");
        let found = s.check(false).unwrap();
        assert_eq!(found.damaged, 1, "{what}: {found:?}");
        let fixed = s.check(true).unwrap();
        assert!(fixed.healthy(), "{what}: {fixed:?}");
        assert_exact(&s, &d, (0, 0));
        let conn = rusqlite::Connection::open(s.path().unwrap()).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2, "{what}");
    }
}

/// `get_into` (the C library's get) reads a value stored apart straight into the
/// caller's memory, checking it as it goes: each damage is a miss that is removed there
/// too, the buffer of a damaged value is given back, and the good entries read whole.
#[test]
fn a_get_into_the_caller_s_memory_of_a_damaged_row_is_a_miss_that_removes_it() {
    // Fallible, as the C library's malloc: a size damaged to more than any memory
    // is refused, not an abort.
    let alloc = |len: usize| {
        let mut b = Vec::new();
        b.try_reserve_exact(len).map_err(|_| {
            backlite::Error::new(
                backlite::ErrorKind::Internal,
                format!("no memory for {len}"),
            )
        })?;
        b.resize(len, std::mem::MaybeUninit::<u8>::uninit());
        Ok(b)
    };
    let bytes = |b: Vec<std::mem::MaybeUninit<u8>>| -> Vec<u8> {
        // SAFETY: get_into returns a buffer only once it has written every byte.
        b.into_iter().map(|m| unsafe { m.assume_init() }).collect()
    };
    for d in DAMAGES {
        let dir = tempfile::tempdir().unwrap();
        let s = damaged_cache(dir.path(), d, &Options::new());
        assert!(s.get_into(DAMAGED, alloc).unwrap().is_none(), "{}", d.name);
        s.stats().unwrap();
        assert_eq!(raw_rows(&s, DAMAGED), 0, "{}: not removed", d.name);
        for &(k, len) in GOOD {
            let (got, _) = s.get_into(k, alloc).unwrap().unwrap();
            assert_eq!(bytes(got), value(len), "{}", d.name);
        }
        assert_exact(&s, d, (0, 0));
    }
}
